"""Canonical folders round-trip through CSV and parquet with dtypes intact (smartreco.data.io)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from smartreco.data import columns as C
from smartreco.data.io import load_folder, write_folder
from smartreco.data.synthetic import generate_in_memory
from smartreco.errors import DataError

pytestmark = [pytest.mark.unit]


@pytest.fixture(scope="module")
def data():
    return generate_in_memory(n_users=40, n_items=120, n_interactions=600, seed=5)


def _items_csv(folder: Path) -> None:
    items = pd.DataFrame({C.ITEM_ID: ["1"], C.TITLE: ["t"], C.CATEGORY: ["c"]})
    items.to_csv(folder / "items.csv", index=False)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_round_trip_keeps_every_table(data, tmp_path: Path, fmt: str) -> None:
    write_folder(data, tmp_path, fmt=fmt)
    expected = sorted(f"{t}.{fmt}" for t in ("interactions", "items", "users"))
    assert sorted(p.name for p in tmp_path.iterdir()) == expected
    back = load_folder(tmp_path)
    for name in ("interactions", "items", "users"):
        pd.testing.assert_frame_equal(getattr(back, name), getattr(data, name), check_like=False)
    assert isinstance(back.items[C.TAGS].iloc[0], list)
    assert str(back.interactions[C.TIMESTAMP].dtype) == "datetime64[ns, UTC]"


def test_missing_table_and_missing_folder_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a folder"):
        load_folder(tmp_path / "nope")
    _items_csv(tmp_path)
    with pytest.raises(DataError, match="no interactions.csv, interactions.parquet or interactions/ found"):
        load_folder(tmp_path)


def test_unreadable_file_names_the_path(tmp_path: Path) -> None:
    (tmp_path / "interactions.parquet").write_bytes(b"not parquet")
    _items_csv(tmp_path)
    with pytest.raises(DataError) as info:
        load_folder(tmp_path)
    assert "interactions.parquet: cannot read" in str(info.value)
    assert "\n" not in str(info.value)


def test_csv_with_bad_value_names_the_column(tmp_path: Path) -> None:
    _items_csv(tmp_path)
    bad = pd.DataFrame({C.USER_ID: ["u"], C.ITEM_ID: ["1"], C.INTERACTION_TYPE: ["rating"],
                        C.TIMESTAMP: ["2024-01-01T00:00:00Z"], C.RATING: [7]})
    bad.to_csv(tmp_path / "interactions.csv", index=False)
    with pytest.raises(DataError, match=r"interactions\.rating: 1 value\(s\) outside 0..5"):
        load_folder(tmp_path)
