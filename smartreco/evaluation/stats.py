"""Paired bootstrap over users: is model A better than model B, beyond the noise of who was sampled?

With ~600 evaluated users the standard error of NDCG@10 is ~0.007 (STACK_NOTES), larger than most
tuning gains, so every comparison is reported as a CI of the per-user difference, never a bare point.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

DEFAULT_SAMPLES = 2000
DEFAULT_SEED = 0


@dataclass
class PairedBootstrap:
    """Mean difference ``a - b``, its percentile CI, and the share of resamples with difference <= 0."""

    mean_diff: float
    ci_low: float
    ci_high: float
    p_not_better: float  # one-sided bootstrap p-value for "a > b"
    n_users: int
    samples: int
    confidence: float

    @property
    def significant(self) -> bool:
        """True when the whole CI lies above 0 (a beats b)."""
        return self.ci_low > 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "significant": self.significant}


def paired_bootstrap(
    a: np.ndarray,
    b: np.ndarray,
    *,
    samples: int = DEFAULT_SAMPLES,
    confidence: float = 0.95,
    seed: int = DEFAULT_SEED,
    chunk: int = 200,
) -> PairedBootstrap:
    """Resample users with replacement (same users for both models: the test is paired)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired_bootstrap: a and b must be 1-D and aligned, got {a.shape} and {b.shape}")
    diff = a - b
    n = diff.size
    if n == 0:
        return PairedBootstrap(0.0, 0.0, 0.0, 1.0, 0, samples, confidence)
    rng = np.random.default_rng(seed)
    means = np.empty(samples, dtype=np.float64)
    for start in range(0, samples, chunk):  # chunks bound memory at chunk x n indices
        stop = min(start + chunk, samples)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = diff[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return PairedBootstrap(
        mean_diff=float(diff.mean()),
        ci_low=float(low),
        ci_high=float(high),
        p_not_better=float((means <= 0.0).mean()),
        n_users=int(n),
        samples=int(samples),
        confidence=float(confidence),
    )


def standard_error(values: np.ndarray) -> float:
    """Standard error of a per-user mean."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.std(ddof=1) / np.sqrt(values.size)) if values.size > 1 else 0.0
