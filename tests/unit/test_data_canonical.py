"""The canonical contract: each violation is one DataError line that names the table, column and problem."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from smartreco.data import columns as C
from smartreco.data.canonical import canonicalize, positive_mask
from smartreco.errors import DataError

pytestmark = [pytest.mark.unit]


def _tables() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    inter = pd.DataFrame({
        C.USER_ID: ["1", "1", "2"],
        C.ITEM_ID: ["10", "11", "10"],
        C.INTERACTION_TYPE: ["view", "rating", "purchase"],
        C.TIMESTAMP: [1_700_000_000, 1_700_000_100, 1_700_000_200],
        C.RATING: [np.nan, 4.5, np.nan],
        C.INTERACTION_ID: ["a", "b", "c"],
    })
    items = pd.DataFrame({C.ITEM_ID: ["10", "11"], C.TITLE: ["x", "y"], C.CATEGORY: ["c1", "c2"],
                          C.TAGS: ["a|b", None], C.PRICE: [1.5, 2.0]})
    users = pd.DataFrame({C.USER_ID: ["1", "2"]})
    return inter, items, users


def test_valid_tables_get_canonical_dtypes() -> None:
    inter, items, users = _tables()
    data = canonicalize(inter, items, users)
    assert str(data.interactions[C.TIMESTAMP].dtype) == "datetime64[ns, UTC]"
    assert data.interactions[C.USER_ID].map(type).eq(str).all()
    assert data.items[C.TAGS].tolist() == [["a", "b"], []]
    assert data.interactions[C.CHANNEL].eq("web").all()
    assert data.interactions[C.SESSION_ID].notna().all()
    assert positive_mask(data.interactions).tolist() == [False, True, True]


def _break(kind: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    inter, items, users = _tables()
    if kind == "missing column":
        inter = inter.drop(columns=[C.TIMESTAMP])
    elif kind == "bad timestamp":
        inter[C.TIMESTAMP] = ["2024-01-01T00:00:00Z", "not-a-date", "2024-01-02"]
    elif kind == "negative rating":
        inter.loc[1, C.RATING] = -1.0
    elif kind == "unknown type":
        inter.loc[0, C.INTERACTION_TYPE] = "buy"
    elif kind == "duplicate interaction id":
        inter.loc[2, C.INTERACTION_ID] = "a"
    elif kind == "duplicate item id":
        items.loc[1, C.ITEM_ID] = "10"
    elif kind == "orphan item":
        inter.loc[2, C.ITEM_ID] = "999"
    elif kind == "orphan user":
        inter.loc[2, C.USER_ID] = "999"
    elif kind == "non-numeric rating":
        inter[C.RATING] = [None, "good", None]
    elif kind == "negative price":
        items.loc[0, C.PRICE] = -3.0
    elif kind == "unknown channel":
        inter[C.CHANNEL] = ["web", "fax", "web"]
    elif kind == "null user":
        inter.loc[0, C.USER_ID] = None
    return inter, items, users


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("missing column", "interactions: missing required column(s) timestamp"),
        ("bad timestamp", "interactions.timestamp: 1 value(s) are not timestamps"),
        ("negative rating", "interactions.rating: 1 value(s) outside 0..5"),
        ("unknown type", "interactions.interaction_type: unknown type(s) buy"),
        ("duplicate interaction id", "interactions.interaction_id: 1 duplicate id(s)"),
        ("duplicate item id", "items.item_id: 1 duplicate id(s)"),
        ("orphan item", "interactions.item_id: 1 interaction(s) name unknown items"),
        ("orphan user", "interactions.user_id: 1 interaction(s) name unknown users"),
        ("non-numeric rating", "interactions.rating: not numeric"),
        ("negative price", "items.price: 1 negative price(s)"),
        ("unknown channel", "interactions.channel: unknown channel(s) fax"),
        ("null user", "interactions.user_id: 1 null value(s)"),
    ],
)
def test_contract_violation_is_one_line_naming_the_problem(kind: str, expected: str) -> None:
    inter, items, users = _break(kind)
    with pytest.raises(DataError) as info:
        canonicalize(inter, items, users)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_orphans_are_allowed_when_references_are_not_checked() -> None:
    inter, items, users = _break("orphan item")
    data = canonicalize(inter, items, users, check_references=False)
    assert "999" in set(data.interactions[C.ITEM_ID])


def test_float_ids_from_csv_become_integer_strings() -> None:
    inter, items, users = _tables()
    inter[C.USER_ID] = [1.0, 1.0, 2.0]
    data = canonicalize(inter, items, users)
    assert data.interactions[C.USER_ID].tolist() == ["1", "1", "2"]
