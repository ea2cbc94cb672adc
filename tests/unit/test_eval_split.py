"""Split protocol properties: ceil 20%, users with < 5 stay in train, temporal order, no leakage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smartreco.data import columns as C
from smartreco.evaluation.split import n_test_per_user, temporal_split, validation_split

pytestmark = [pytest.mark.unit]


def _frame(counts: list[int], seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for u, n in enumerate(counts):
        ts = pd.to_datetime(rng.integers(1_600_000_000, 1_700_000_000, size=n), unit="s", utc=True)
        rows.append(pd.DataFrame({C.USER_ID: f"u{u}", C.ITEM_ID: [f"i{j}" for j in range(n)], C.TIMESTAMP: ts}))
    return pd.concat(rows, ignore_index=True).sample(frac=1.0, random_state=seed)  # shuffled input


def test_ceil_twenty_percent_without_float_error():
    assert n_test_per_user(np.array([4, 5, 6, 10, 11, 15, 20, 21])).tolist() == [0, 1, 2, 2, 3, 3, 4, 5]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=30), min_size=1, max_size=12), st.integers(0, 1000))
def test_split_properties(counts, seed):
    df = _frame(counts, seed)
    split = temporal_split(df)
    assert len(split.train) + len(split.test) == len(df)
    ids = lambda f: set(f[C.USER_ID] + "/" + f[C.ITEM_ID])  # noqa: E731
    assert not ids(split.train) & ids(split.test)  # each row lands in exactly one side
    test_counts = split.test.groupby(C.USER_ID).size()
    for u, n in enumerate(counts):
        expected = int(np.ceil(round(0.2 * n, 9))) if n >= 5 else 0
        assert test_counts.get(f"u{u}", 0) == expected
    last_train = split.train.groupby(C.USER_ID)[C.TIMESTAMP].max()
    first_test = split.test.groupby(C.USER_ID)[C.TIMESTAMP].min()
    assert (last_train.reindex(first_test.index) <= first_test).all()  # test is each user's latest


def test_test_rows_are_the_latest_and_validation_nests_inside_train():
    df = _frame([10, 4, 25])
    split = temporal_split(df)
    assert "u1" not in set(split.test[C.USER_ID])
    for user, rows in df.groupby(C.USER_ID):
        held_out = set(split.test.loc[split.test[C.USER_ID] == user, C.ITEM_ID])
        latest = set(rows.sort_values(C.TIMESTAMP)[C.ITEM_ID].iloc[len(rows) - len(held_out):])
        assert latest == held_out
    val = validation_split(split.train)
    assert len(val.train) + len(val.test) == len(split.train)
    assert val.test[C.TIMESTAMP].max() <= split.test[C.TIMESTAMP].max()
    merged = val.test.merge(split.test, on=[C.USER_ID, C.ITEM_ID])
    assert merged.empty  # validation never touches test


def test_ties_in_time_are_deterministic():
    df = pd.DataFrame({C.USER_ID: "u", C.ITEM_ID: [f"i{j}" for j in range(10)],
                       C.TIMESTAMP: pd.Timestamp("2024-01-01", tz="UTC")})
    assert temporal_split(df).test[C.ITEM_ID].tolist() == ["i8", "i9"]
