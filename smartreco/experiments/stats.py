"""Fixed-horizon A/B statistics from per-arm counts and moments, vectorised over numpy arrays.

Written on numpy + scipy.special so thousands of simulated experiments are tested at once; the
tests cross-check every formula against statsmodels / scipy.stats. Arm ``a`` is the control, ``b``
the treatment; differences are ``b - a``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import special
from scipy import stats as sps

ArrayLike = float | np.ndarray


def _z(alpha: float) -> float:
    return float(special.ndtri(1.0 - alpha / 2.0))


def two_sided_p_from_z(z: ArrayLike) -> np.ndarray:
    return 2.0 * special.ndtr(-np.abs(z))


def wilson_ci(successes: ArrayLike, n: ArrayLike, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a proportion (good coverage at small CTRs, unlike Wald)."""
    x, n = np.asarray(successes, float), np.asarray(n, float)
    z = _z(alpha)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(n > 0, x / n, np.nan)
        denom = 1.0 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return centre - half, centre + half


def mean_ci(
    mean: ArrayLike, var: ArrayLike, n: ArrayLike, alpha: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """Student-t interval of a mean from its sample variance (ddof=1)."""
    mean, var, n = (np.asarray(v, float) for v in (mean, var, n))
    with np.errstate(invalid="ignore", divide="ignore"):
        half = sps.t.ppf(1 - alpha / 2, np.maximum(n - 1, 1)) * np.sqrt(var / n)
    return mean - half, mean + half


@dataclass(frozen=True)
class TestResult:
    """One comparison b vs a: statistic, p-value, difference with its CI, effect size."""

    statistic: float
    p_value: float
    difference: float
    ci_low: float
    ci_high: float
    effect_size: float
    df: float | None = None

    def to_dict(self) -> dict:
        return {k: (None if v is None or not np.isfinite(v) else float(v)) for k, v in asdict(self).items()}


def two_proportion_ztest(
    x_a: ArrayLike, n_a: ArrayLike, x_b: ArrayLike, n_b: ArrayLike, alpha: float = 0.05
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pooled two-sided z-test of p_b == p_a (= statsmodels ``proportions_ztest``).

    Returns (z, p, ci_low, ci_high) where the CI of p_b - p_a is the unpooled Wald interval.
    """
    x_a, n_a, x_b, n_b = (np.asarray(v, float) for v in (x_a, n_a, x_b, n_b))
    with np.errstate(invalid="ignore", divide="ignore"):
        pa, pb = x_a / n_a, x_b / n_b
        pooled = (x_a + x_b) / (n_a + n_b)
        se0 = np.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
        z = np.where(se0 > 0, (pb - pa) / se0, 0.0)
        se = np.sqrt(pa * (1 - pa) / n_a + pb * (1 - pb) / n_b)
    half = _z(alpha) * se
    return z, two_sided_p_from_z(z), (pb - pa) - half, (pb - pa) + half


def welch_ttest(
    mean_a: ArrayLike,
    var_a: ArrayLike,
    n_a: ArrayLike,
    mean_b: ArrayLike,
    var_b: ArrayLike,
    n_b: ArrayLike,
    alpha: float = 0.05,
) -> tuple[np.ndarray, ...]:
    """Welch's unequal-variance t-test from summary statistics (= scipy ``ttest_ind(equal_var=False)``).

    Returns (t, df, p, ci_low, ci_high) for mean_b - mean_a.
    """
    ma, va, na, mb, vb, nb = (np.asarray(v, float) for v in (mean_a, var_a, n_a, mean_b, var_b, n_b))
    with np.errstate(invalid="ignore", divide="ignore"):
        sa, sb = va / na, vb / nb
        se = np.sqrt(sa + sb)
        t = np.where(se > 0, (mb - ma) / se, 0.0)
        df = (sa + sb) ** 2 / (sa**2 / (na - 1) + sb**2 / (nb - 1))
        df = np.where(np.isfinite(df), df, np.maximum(na + nb - 2, 1))
        p = 2.0 * special.stdtr(df, -np.abs(t))
        half = sps.t.ppf(1 - alpha / 2, df) * se
    return t, df, p, (mb - ma) - half, (mb - ma) + half


def cohens_h(p_a: ArrayLike, p_b: ArrayLike) -> np.ndarray:
    """Effect size of two proportions: 2 asin sqrt(p_b) - 2 asin sqrt(p_a) (0.2 small, 0.5 medium)."""
    return 2 * np.arcsin(np.sqrt(np.asarray(p_b, float))) - 2 * np.arcsin(np.sqrt(np.asarray(p_a, float)))


def cohens_d(
    mean_a: ArrayLike, var_a: ArrayLike, n_a: ArrayLike, mean_b: ArrayLike, var_b: ArrayLike, n_b: ArrayLike
) -> np.ndarray:
    """Standardised mean difference with the pooled standard deviation."""
    ma, va, na, mb, vb, nb = (np.asarray(v, float) for v in (mean_a, var_a, n_a, mean_b, var_b, n_b))
    with np.errstate(invalid="ignore", divide="ignore"):
        pooled = np.sqrt(((na - 1) * va + (nb - 1) * vb) / (na + nb - 2))
        return np.where(pooled > 0, (mb - ma) / pooled, 0.0)


def relative_lift(
    x_a: ArrayLike, n_a: ArrayLike, x_b: ArrayLike, n_b: ArrayLike, alpha: float = 0.05
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """p_b / p_a - 1 with a delta-method CI on the log ratio (exp back, so it stays > -100%)."""
    x_a, n_a, x_b, n_b = (np.asarray(v, float) for v in (x_a, n_a, x_b, n_b))
    with np.errstate(invalid="ignore", divide="ignore"):
        pa, pb = x_a / n_a, x_b / n_b
        log_ratio = np.log(pb / pa)
        se = np.sqrt((1 - pa) / x_a + (1 - pb) / x_b)
        half = _z(alpha) * se
        return pb / pa - 1, np.exp(log_ratio - half) - 1, np.exp(log_ratio + half) - 1


def srm_check(
    observed: np.ndarray | list[int], expected_share: np.ndarray | list[float], threshold: float = 0.001
) -> dict:
    """Sample-ratio mismatch: chi-square goodness of fit of arm counts to the planned allocation.

    A tiny p-value (default < 0.001, the usual industry bar) means the split itself is broken
    (assignment bug, bot traffic, logging loss) and no metric comparison can be trusted.
    """
    obs = np.asarray(observed, float)
    share = np.asarray(expected_share, float)
    share = share / share.sum()
    exp = obs.sum() * share
    with np.errstate(invalid="ignore", divide="ignore"):
        chi2 = float(np.sum((obs - exp) ** 2 / exp)) if obs.sum() > 0 else 0.0
    p = float(special.chdtrc(len(obs) - 1, chi2)) if obs.sum() > 0 else 1.0
    return {
        "chi2": chi2,
        "p_value": p,
        "mismatch": bool(p < threshold),
        "threshold": threshold,
        "observed": obs.astype(int).tolist(),
        "expected": exp.tolist(),
    }
