"""How many units per arm a test needs, and the power it has: the planning side of an experiment.

Formulas are the normal-approximation ones the z-test uses, so planned power is the power the
analysis delivers (tests check this by simulation and against statsmodels).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from smartreco.errors import DataError


def _check_rate(name: str, p: float) -> None:
    if not 0.0 < p < 1.0:
        raise DataError(f"{name}: must be a rate strictly between 0 and 1, got {p}")


def sample_size_proportions(
    p_a: float, p_b: float, *, alpha: float = 0.05, power: float = 0.8, ratio: float = 1.0
) -> tuple[int, int]:
    """Units per arm (n_a, n_b = ratio * n_a) for a two-sided pooled z-test of p_a vs p_b.

    n_a = (z_{1-a/2} sqrt(pbar qbar (1 + 1/r)) + z_{1-b} sqrt(p_a q_a + p_b q_b / r))^2 / (p_b - p_a)^2
    """
    _check_rate("baseline rate", p_a)
    _check_rate("treatment rate", p_b)
    if p_a == p_b:
        raise DataError("minimum detectable effect: must be non-zero")
    if not (0 < alpha < 1 and 0 < power < 1 and ratio > 0):
        raise DataError("alpha and power must be in (0, 1) and ratio > 0")
    za, zb = special.ndtri(1 - alpha / 2), special.ndtri(power)
    pbar = (p_a + ratio * p_b) / (1 + ratio)
    num = za * math.sqrt(pbar * (1 - pbar) * (1 + 1 / ratio)) + zb * math.sqrt(
        p_a * (1 - p_a) + p_b * (1 - p_b) / ratio
    )
    n_a = math.ceil(num**2 / (p_b - p_a) ** 2)
    return n_a, math.ceil(ratio * n_a)


def sample_size_for_lift(baseline: float, relative_mde: float, **kwargs: float) -> tuple[int, int]:
    """Units per arm to detect ``baseline * (1 + relative_mde)`` (e.g. 0.05 for +5 %)."""
    return sample_size_proportions(baseline, baseline * (1 + relative_mde), **kwargs)


def power_proportions(
    p_a: float, p_b: float, n_a: int | np.ndarray, n_b: int | np.ndarray | None = None, *, alpha: float = 0.05
) -> np.ndarray:
    """Power of the two-sided pooled z-test at the given sizes (both tails counted)."""
    n_a = np.asarray(n_a, float)
    n_b = n_a if n_b is None else np.asarray(n_b, float)
    za = special.ndtri(1 - alpha / 2)
    pbar = (n_a * p_a + n_b * p_b) / (n_a + n_b)
    se0 = np.sqrt(pbar * (1 - pbar) * (1 / n_a + 1 / n_b))
    se1 = np.sqrt(p_a * (1 - p_a) / n_a + p_b * (1 - p_b) / n_b)
    d = abs(p_b - p_a)
    return special.ndtr((d - za * se0) / se1) + special.ndtr((-d - za * se0) / se1)


def sample_size_means(delta: float, sd: float, *, alpha: float = 0.05, power: float = 0.8) -> int:
    """Units per arm for a two-sided test of a mean difference ``delta`` with common ``sd`` (normal approx.,
    plus the usual z_{1-a/2}^2 / 4 small-sample correction toward the t-test)."""
    if delta == 0 or sd <= 0:
        raise DataError("delta must be non-zero and sd positive")
    za, zb = special.ndtri(1 - alpha / 2), special.ndtri(power)
    return math.ceil(2 * (za + zb) ** 2 * sd**2 / delta**2 + za**2 / 4)
