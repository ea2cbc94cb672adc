"""Alert rules: promtool checks them and runs the unit tests in monitoring/prometheus/tests (each alert
fires on one synthetic series and stays silent on another); a changed threshold makes those tests fail."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.unit]

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "monitoring/prometheus/rules.yaml"
RULE_TESTS = ROOT / "monitoring/prometheus/tests/rules_test.yaml"
ALERTS = {"SmartRecoHighP99Latency", "SmartRecoHighErrorRate", "SmartRecoCTRDrop", "SmartRecoBanditArmStarvation",
          "SmartRecoDriftDetected", "SmartRecoFeedbackLogLag"}


def _promtool() -> str:
    found = shutil.which("promtool")
    if found:
        return found
    msg = "promtool not found: run scripts/tools.sh (Debian package prometheus)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI=true: {msg}")
    pytest.skip(msg)


def _groups(text: str | None = None) -> list[dict]:
    doc = yaml.safe_load(text if text is not None else RULES.read_text())
    assert doc["kind"] == "PrometheusRule"
    return doc["spec"]["groups"]


def _run_rule_tests(tmp_path: Path, rules_text: str | None = None, only: str | None = None):
    """promtool test rules on the PrometheusRule's groups; `only`: just the cases of that alert."""
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": _groups(rules_text)}, sort_keys=False))
    tests = yaml.safe_load(RULE_TESTS.read_text())
    if only:
        tests["tests"] = [c for c in tests["tests"] if any(t["alertname"] == only for t in c["alert_rule_test"])]
    (tmp_path / "rules_test.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    return subprocess.run([_promtool(), "test", "rules", "rules_test.yaml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)


def test_rules_pass_promtool_check(tmp_path):
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": _groups()}))
    proc = subprocess.run([_promtool(), "check", "rules", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 12 rules found" in proc.stdout


def test_every_required_alert_exists_with_severity_and_runbook():
    alerts = {r["alert"]: r for g in _groups() for r in g["rules"] if "alert" in r}
    assert set(alerts) == ALERTS
    for rule in alerts.values():
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["runbook"].startswith("docs/deploying.md#")


def test_every_alert_has_a_firing_and_a_silent_case():
    cases = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    firing, silent = set(), set()
    for case in cases:
        for t in case.get("alert_rule_test", []):
            (firing if t["exp_alerts"] else silent).add(t["alertname"])
    assert firing == ALERTS and silent == ALERTS


def test_alert_unit_tests_pass(tmp_path):
    proc = _run_rule_tests(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


@pytest.mark.parametrize(("alert", "old", "new"), [
    ("SmartRecoHighP99Latency", "smartreco:request_latency_seconds:p99_5m > 0.25",
     "smartreco:request_latency_seconds:p99_5m > 0.6"),
    ("SmartRecoHighErrorRate", "smartreco:request_errors:ratio_rate5m > 0.02",
     "smartreco:request_errors:ratio_rate5m > 0.005"),
    ("SmartRecoCTRDrop", "< 0.7 * smartreco:ctr:ratio_rate1d", "< 0.1 * smartreco:ctr:ratio_rate1d"),
    ("SmartRecoBanditArmStarvation", "group_left sum(smartreco:arm_served:rate1h) < 0.02",
     "group_left sum(smartreco:arm_served:rate1h) < 0.001"),
    ("SmartRecoDriftDetected", "max by (dataset) (smartreco_drift_share) > 0.3",
     "max by (dataset) (smartreco_drift_share) > 0.05"),
    ("SmartRecoFeedbackLogLag", "timestamp_seconds) > 900", "timestamp_seconds) > 3600"),
])
def test_a_changed_threshold_breaks_the_alert_tests(tmp_path, alert, old, new):
    text = RULES.read_text()
    assert text.count(old) == 1, old
    proc = _run_rule_tests(tmp_path, text.replace(old, new), only=alert)
    assert proc.returncode != 0
    assert re.search(r"FAILED|expected|got", proc.stdout + proc.stderr)
