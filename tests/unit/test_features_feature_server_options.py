"""Every `feast serve` the project starts disables gunicorn's worker recycling: Feast's default recycles a worker
every ~1,000 lookups and a fresh worker needs ~2 s to start, during which every lookup waits (measured: the
graph's node calls timed out at their 2 s deadline in bursts, one per ~1,000 feature reads)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from smartreco.features import feature_server

ROOT = Path(__file__).resolve().parents[2]


def _has_no_recycling(args: list[str]) -> bool:
    return any(a == "--max-requests" and b == "0" for a, b in zip(args, args[1:], strict=False))


def test_the_helper_passes_the_options():
    assert _has_no_recycling(list(feature_server.FEAST_SERVE_OPTIONS))


def test_the_feast_deployment_disables_recycling():
    doc = yaml.safe_load((ROOT / "manifests/base/platform/feast/deployment.yaml").read_text())
    commands = [c["command"] + c.get("args", []) for c in doc["spec"]["template"]["spec"]["containers"]]
    serving = [cmd for cmd in commands if "serve" in cmd]
    assert serving and all(_has_no_recycling(cmd) for cmd in serving)


def test_every_feast_serve_in_the_scripts_disables_recycling():
    found = 0
    for script in (ROOT / "scripts").glob("*.sh"):
        for line in script.read_text().splitlines():
            if re.search(r"feast\"? serve\b", line):
                found += 1
                assert _has_no_recycling(line.split()), f"{script.name}: {line.strip()}"
    assert found, "scripts/demo.sh starts the feature server"
