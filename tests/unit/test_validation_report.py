"""The validation HTML report leads with the pass/fail table (failures first), draws a plot only for a
failed numeric check, and stays small enough for the Kubeflow UI to render inline."""

import pandas as pd
import pytest

from smartreco.data import columns as C
from smartreco.data.movielens import load_movielens
from smartreco.validation import validate_data
from smartreco.validation.report import write_html_report

pytestmark = [pytest.mark.unit]
NOW = pd.Timestamp("2026-01-01", tz="UTC")
#: what "small" means: the Evidently report this replaced was ~4 MB
MAX_BYTES = 200_000


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    data = load_movielens()
    users = data.users[C.USER_ID].iloc[:200]
    inter = data.interactions[data.interactions[C.USER_ID].isin(users)].reset_index(drop=True)
    items = data.items[data.items[C.ITEM_ID].isin(inter[C.ITEM_ID])].reset_index(drop=True)
    return {"interactions": inter, "items": items, "users": data.users[data.users[C.USER_ID].isin(users)]}


def _rows(html: str) -> list[str]:
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [r for r in body.split("</tr>") if "<td>" in r]


def test_passing_data_has_a_table_and_no_plots(tables, tmp_path):
    path = write_html_report(validate_data(tables, now=NOW, max_age_days=None), tmp_path / "ok.html")
    html = path.read_text()
    assert "Data validation: <span class=\"ok\">PASSED" in html
    rows = _rows(html)
    assert rows and all("<td>pass</td>" in r for r in rows)
    assert "<svg" not in html  # nothing failed: nothing worth a plot
    assert path.stat().st_size < MAX_BYTES


def test_failures_come_first_with_their_histogram(tables, tmp_path):
    inter = tables["interactions"].copy()
    inter.loc[[0, 1, 2], C.RATING] = 9.0
    res = validate_data({**tables, "interactions": inter}, now=NOW, max_age_days=None)
    path = write_html_report(res, tmp_path / "bad.html")
    html = path.read_text()
    assert "FAILED" in html.split("</h1>", 1)[0]
    rows = _rows(html)
    assert "<td>FAIL</td>" in rows[0] and "rating_range" in rows[0] and "<td>3</td>" in rows[0]
    assert all("<td>pass</td>" in r for r in rows[1:])  # exactly one failure, then the passes
    assert html.count("<svg") == 1 and "rating: distribution, failing rows in red" in html
    assert path.stat().st_size < MAX_BYTES
