"""Always-valid inference (mixture SPRT, Johari et al. 2017 "Peeking at A/B tests") so a team may look
at results every day without inflating false positives.

For a difference estimate ``d`` with variance ``V`` and a normal mixing prior N(0, tau^2) on the true
difference, the mixture likelihood ratio is

    Lambda = sqrt(V / (V + tau^2)) * exp(tau^2 d^2 / (2 V (V + tau^2)))

``p_n = min(1, min_{k<=n} 1/Lambda_k)`` is an always-valid p-value (P(ever <= alpha) <= alpha under
H0, by Ville's inequality) and inverting the test gives a confidence sequence. ``tau`` is the
effect scale one expects (the minimum detectable effect is a good choice); power depends on it,
validity does not. All functions are vectorised with time on the last axis.
"""

from __future__ import annotations

import numpy as np


def msprt_lambda(diff: np.ndarray, var: np.ndarray, tau: float) -> np.ndarray:
    """Mixture likelihood ratio of H1 (difference ~ N(0, tau^2)) against H0 (difference 0)."""
    diff, var = np.asarray(diff, float), np.asarray(var, float)
    t2 = float(tau) ** 2
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        log_lam = 0.5 * np.log(var / (var + t2)) + t2 * diff**2 / (2 * var * (var + t2))
        lam = np.exp(np.minimum(log_lam, 700.0))
    return np.where(var > 0, lam, 1.0)


def always_valid_p(diff: np.ndarray, var: np.ndarray, tau: float) -> np.ndarray:
    """Running always-valid p-value along the last axis (non-increasing)."""
    p = np.minimum(1.0, 1.0 / msprt_lambda(diff, var, tau))
    return np.minimum.accumulate(p, axis=-1)


def confidence_sequence(
    diff: np.ndarray, var: np.ndarray, tau: float, alpha: float = 0.05, running: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """(low, high): covers the true difference at every look at once with probability >= 1 - alpha.

    ``running`` intersects the intervals over time (still valid, never widens).
    """
    diff, var = np.asarray(diff, float), np.asarray(var, float)
    t2 = float(tau) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        half = np.sqrt(var * (var + t2) / t2 * (2 * np.log(1 / alpha) + np.log((var + t2) / var)))
    half = np.where(var > 0, half, np.inf)
    low, high = diff - half, diff + half
    if running:
        low = np.fmax.accumulate(np.where(np.isfinite(low), low, -np.inf), axis=-1)
        high = np.fmin.accumulate(np.where(np.isfinite(high), high, np.inf), axis=-1)
    return low, high


def sequential_proportions(
    x_a: np.ndarray, n_a: np.ndarray, x_b: np.ndarray, n_b: np.ndarray, *, tau: float, alpha: float = 0.05
) -> dict[str, np.ndarray]:
    """mSPRT on cumulative counts (time on the last axis): p_b - p_a, its always-valid p and CS.

    The p-value uses the pooled (null) variance, which keeps small-sample looks valid; the
    confidence sequence uses the unpooled variance, as it must cover non-zero differences.
    """
    x_a, n_a, x_b, n_b = (np.asarray(v, float) for v in (x_a, n_a, x_b, n_b))
    with np.errstate(invalid="ignore", divide="ignore"):
        pa, pb = x_a / n_a, x_b / n_b
        diff = pb - pa
        pooled = (x_a + x_b) / (n_a + n_b)
        var0 = pooled * (1 - pooled) * (1 / n_a + 1 / n_b)
        var1 = pa * (1 - pa) / n_a + pb * (1 - pb) / n_b
    ok = (n_a > 0) & (n_b > 0)
    diff = np.where(ok, diff, 0.0)
    var0 = np.where(ok & np.isfinite(var0), var0, 0.0)
    var1 = np.where(ok & np.isfinite(var1), var1, 0.0)
    low, high = confidence_sequence(diff, var1, tau, alpha)
    return {"difference": diff, "p_value": always_valid_p(diff, var0, tau), "cs_low": low, "cs_high": high}
