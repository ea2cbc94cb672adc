"""`smartreco ab report` over an event log whose request logger dropped some answers: the report names
the impressions it expected (feedback about them exists) but did not get, and leaves their feedback out
of the per-arm rates instead of failing or attributing it to an arm."""

from __future__ import annotations

import json

import pytest

from smartreco.cli import main
from smartreco.events.eventlog import LocalEventLog
from smartreco.experiments.analysis import analyse
from smartreco.feedback import FEEDBACK, IMPRESSION, read_dataset

pytestmark = [pytest.mark.unit]


def write_log(directory, n_requests=40, dropped=(3, 7, 11)):
    """n_requests answers over two arms, a click on every other one; the logger lost ``dropped``."""
    with LocalEventLog(directory) as log:
        for i in range(n_requests):
            arm = "champion" if i % 2 else "challenger"
            if i not in dropped:
                log.append({"request_id": f"r{i}", "user_id": str(i % 9), "variant": arm,
                            "items": ["1", "2", "3"], "ts": f"2026-12-0{1 + i % 3}T10:00:00Z"}, IMPRESSION)  # fmt: skip
            if i % 2 == 1 or i in dropped:
                log.append({"feedback_id": f"f{i}", "request_id": f"r{i}", "user_id": str(i % 9), "item_id": "2",
                            "interaction_type": "click", "ts": f"2026-12-0{1 + i % 3}T10:05Z"}, FEEDBACK)  # fmt: skip
        log.append({"feedback_id": "f-anon", "user_id": "1", "item_id": "2", "interaction_type": "click"}, FEEDBACK)


def test_the_analysis_counts_missing_impressions_and_keeps_their_feedback_out_of_the_rates(tmp_path):
    write_log(tmp_path / "events")
    s = analyse(read_dataset(tmp_path / "events")).summary
    lost = s["missing_impressions"]
    assert lost["count"] == 3 and lost["request_ids"] == ["r11", "r3", "r7"] and lost["feedback"] == 3
    assert lost["expected"] == 20  # the 20 clicked answers (the dropped ones are among them); not the anonymous one
    assert s["counts"]["impressions"] == 37 and s["counts"]["feedback_without_request_id"] == 1
    assert sum(a["clicks"] for a in s["arms"].values()) == 17  # 20 clicks minus the 3 unattributable
    assert any("have no impression" in c for c in s["caveats"])


def test_ab_report_cli_reports_the_impressions_it_expected_but_did_not_get(tmp_path, capsys):
    write_log(tmp_path / "events")
    assert main(["ab", "report", "--logs", str(tmp_path / "events"), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "Missing impressions: 3 of 20 request id(s) with feedback" in out and "r3" in out
    summary = json.loads((tmp_path / "out/summary.json").read_text())
    assert summary["missing_impressions"]["count"] == 3
    assert "Missing impressions: 3" in (tmp_path / "out/summary.md").read_text()
    assert "Missing impressions: 3" in (tmp_path / "out/report.html").read_text()


def test_a_complete_log_reports_none_missing_and_an_empty_one_says_what_was_expected(tmp_path, capsys):
    write_log(tmp_path / "full", dropped=())
    assert analyse(read_dataset(tmp_path / "full")).summary["missing_impressions"]["count"] == 0
    with LocalEventLog(tmp_path / "lost") as log:
        log.append({"feedback_id": "f1", "request_id": "r1", "user_id": "1", "item_id": "2",
                    "interaction_type": "click"}, FEEDBACK)  # fmt: skip
    assert main(["ab", "report", "--logs", str(tmp_path / "lost"), "--out", str(tmp_path / "o")]) == 1
    assert "1 request id(s) with feedback expected one" in capsys.readouterr().err
