"""The offline split protocol (ARCHITECTURE §5): a per-user temporal hold-out.

Each user's interactions are sorted by time; the last ``ceil(20%)`` go to test, the rest to train.
Users with fewer than ``min_interactions`` stay entirely in train (too little history to hold out).
:func:`validation_split` applies the same rule once more inside train, so models tune
hyper-parameters, stop early or label a ranker without ever seeing test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from smartreco.data import columns as C
from smartreco.errors import DataError

TEST_FRACTION = 0.2
MIN_INTERACTIONS = 5


@dataclass
class Split:
    """Train and test interactions (canonical rows, original columns) plus the rule that made them."""

    train: pd.DataFrame
    test: pd.DataFrame
    test_fraction: float = TEST_FRACTION
    min_interactions: int = MIN_INTERACTIONS

    def describe(self) -> dict:
        n_users = pd.concat([self.train[C.USER_ID], self.test[C.USER_ID]]).nunique()
        return {
            "split": "per-user temporal hold-out",
            "test_fraction": self.test_fraction,
            "rounding": "ceil",
            "min_interactions": self.min_interactions,
            "users": int(n_users),
            "users_with_test": int(self.test[C.USER_ID].nunique()),
            "train_interactions": len(self.train),
            "test_interactions": len(self.test),
        }


def n_test_per_user(counts: np.ndarray, test_fraction: float = TEST_FRACTION,
                    min_interactions: int = MIN_INTERACTIONS) -> np.ndarray:
    """``ceil(test_fraction * n)`` for users with ``n >= min_interactions``, else 0.

    The product is rounded to 9 decimals first: ``0.2 * 15`` is ``3.0000000000000004`` in floating point
    and a bare ceil would hold out 4 instead of 3.
    """
    counts = np.asarray(counts, dtype=np.int64)
    n_test = np.ceil(np.round(counts * test_fraction, 9)).astype(np.int64)
    return np.where(counts >= min_interactions, n_test, 0)


def temporal_split(
    interactions: pd.DataFrame,
    test_fraction: float = TEST_FRACTION,
    min_interactions: int = MIN_INTERACTIONS,
) -> Split:
    """Per-user temporal hold-out. Ties in time keep the input order (a stable sort), so the split is
    deterministic for a given table."""
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"test_fraction: must be in (0, 1), got {test_fraction}")
    for col in (C.USER_ID, C.TIMESTAMP):
        if col not in interactions:
            raise DataError(f"interactions: missing required column {col} for the temporal split")
    df = interactions.reset_index(drop=True)
    user_codes, _ = pd.factorize(df[C.USER_ID])
    ts = pd.to_datetime(df[C.TIMESTAMP], utc=True).astype("int64").to_numpy()  # order only, unit irrelevant
    order = np.lexsort((ts, user_codes))  # stable: by user, then time, then input order
    sorted_users = user_codes[order]
    counts = np.bincount(user_codes)
    group_start = np.concatenate(([0], np.cumsum(counts)[:-1]))
    position = np.arange(len(df)) - group_start[sorted_users]
    n_test = n_test_per_user(counts, test_fraction, min_interactions)[sorted_users]
    is_test_sorted = position >= counts[sorted_users] - n_test
    is_test = np.empty(len(df), dtype=bool)
    is_test[order] = is_test_sorted
    return Split(
        train=df[~is_test].reset_index(drop=True),
        test=df[is_test].reset_index(drop=True),
        test_fraction=test_fraction,
        min_interactions=min_interactions,
    )


def validation_split(train: pd.DataFrame, test_fraction: float = TEST_FRACTION,
                     min_interactions: int = MIN_INTERACTIONS) -> Split:
    """The same rule applied inside train: ``(inner train, validation)`` for tuning without test."""
    return temporal_split(train, test_fraction, min_interactions)
