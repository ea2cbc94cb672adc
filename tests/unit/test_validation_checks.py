"""Each corruption of a clean MovieLens slice fails validation naming the check and its bad-row count."""

import pandas as pd
import pytest

from smartreco.cli import main
from smartreco.data import columns as C
from smartreco.data.movielens import load_movielens
from smartreco.validation import ValidationFailed, validate_data

pytestmark = [pytest.mark.unit]
NOW = pd.Timestamp("2026-01-01", tz="UTC")


@pytest.fixture(scope="module")
def clean() -> dict[str, pd.DataFrame]:
    data = load_movielens()
    users = data.users[C.USER_ID].iloc[:15]
    inter = data.interactions[data.interactions[C.USER_ID].isin(users)].reset_index(drop=True)
    items = data.items[data.items[C.ITEM_ID].isin(inter[C.ITEM_ID])].reset_index(drop=True)
    return {"interactions": inter, "items": items, "users": data.users[data.users[C.USER_ID].isin(users)]}


def _failed(tables, **kw) -> dict[tuple[str, str, str], int | None]:
    res = validate_data(tables, now=NOW, max_age_days=None, **kw)
    return {(c.table, c.column, c.check): c.bad_rows for c in res.blocking_failures}


def test_clean_data_passes(clean):
    res = validate_data(clean, now=NOW, max_age_days=None)
    assert res.passed and not res.blocking_failures
    assert any(c.check == "rating_range" and c.passed for c in res.checks)


def _with(clean, table, df):
    return {**clean, table: df}


@pytest.mark.parametrize("column", [C.USER_ID, C.ITEM_ID, C.TIMESTAMP])
def test_nulls_in_required_fields(clean, column):
    inter = clean["interactions"].copy()
    inter.loc[[1, 5, 9], column] = None
    assert _failed(_with(clean, "interactions", inter))[("interactions", column, "not_null")] == 3


def test_out_of_range_ratings(clean):
    inter = clean["interactions"].copy()
    inter.loc[[0, 1], C.RATING] = 7.0
    inter.loc[2, C.RATING] = 0.0
    assert _failed(_with(clean, "interactions", inter)) == {("interactions", C.RATING, "rating_range"): 3}


def test_negative_prices(clean):
    items = clean["items"].copy()
    items[C.PRICE] = 9.99
    items.loc[[0, 3], C.PRICE] = -1.0
    assert _failed(_with(clean, "items", items)) == {("items", C.PRICE, "price_non_negative"): 2}


def test_orphan_interactions(clean):
    inter = clean["interactions"].copy()
    inter.loc[[0, 1, 2, 3], C.ITEM_ID] = "no-such-item"
    inter.loc[[4], C.USER_ID] = "no-such-user"
    failed = _failed(_with(clean, "interactions", inter))
    assert failed == {("interactions", C.ITEM_ID, "known_item"): 4, ("interactions", C.USER_ID, "known_user"): 1}


def test_duplicate_interaction_ids(clean):
    inter = clean["interactions"]
    dup = pd.concat([inter, inter.iloc[[3, 4, 5]]], ignore_index=True)
    assert _failed(_with(clean, "interactions", dup))[("interactions", C.INTERACTION_ID, "unique")] == 3


def test_future_timestamps(clean):
    inter = clean["interactions"].copy()
    inter.loc[[7, 8], C.TIMESTAMP] = NOW + pd.Timedelta(days=3)
    assert _failed(_with(clean, "interactions", inter)) == {("interactions", C.TIMESTAMP, "not_in_future"): 2}


def test_unparsable_types_are_blocking(clean):
    inter = clean["interactions"].copy()
    inter[C.RATING] = inter[C.RATING].astype(object)
    inter.loc[0, C.RATING] = "five"
    assert _failed(_with(clean, "interactions", inter))[("interactions", C.RATING, "type_numeric")] == 1


def test_missing_required_column_is_blocking(clean):
    inter = clean["interactions"].drop(columns=[C.ITEM_ID])
    assert ("interactions", C.ITEM_ID, "column_present") in _failed(_with(clean, "interactions", inter))


def test_stale_data_only_warns(clean):
    res = validate_data(clean, now=NOW, max_age_days=30)
    assert res.passed
    assert [c.check for c in res.warnings] == ["freshness_30d"]


def test_raise_for_status_message_names_check_and_count(clean):
    inter = clean["interactions"].copy()
    inter.loc[[0, 1], C.RATING] = 9.0
    res = validate_data(_with(clean, "interactions", inter), now=NOW, max_age_days=None)
    with pytest.raises(ValidationFailed, match=r"interactions\.rating rating_range: 2 bad row"):
        res.raise_for_status()
    assert res.metrics()["bad_rows.interactions.rating.rating_range"] == 2.0


def test_cli_validate_exit_codes_and_html_report(clean, tmp_path, capsys):
    good, bad = tmp_path / "good", tmp_path / "bad"
    for folder, inter in ((good, clean["interactions"]), (bad, clean["interactions"].assign(**{C.RATING: 6.0}))):
        folder.mkdir()
        inter.to_parquet(folder / "interactions.parquet")
        clean["items"].to_parquet(folder / "items.parquet")
    assert main(["data", "validate", "--source", str(good)]) == 0
    report = tmp_path / "report.html"
    assert main(["data", "validate", "--source", str(bad), "--report", str(report)]) == 1
    err = capsys.readouterr().err
    assert "rating_range" in err and f"{len(clean['interactions'])} bad row" in err
    html = report.read_text()
    n = len(clean["interactions"])  # the report's first check row is the failure, with its count of bad rows
    first_row = html.split("<tbody>", 1)[1].split("</tr>", 1)[0]
    assert "FAIL" in first_row and "rating_range" in first_row and f"{n:,}" in first_row
