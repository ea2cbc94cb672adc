"""The Redis event stream's default retention is declared once (smartreco/settings.py) and is what both the
`smartreco events archive` command and the cluster's hourly CronJob use: the CronJob passes no retention flag
(a flag there would drift from the settings), the command's flags default to the settings, and the age bound
is the local log's idempotency window, the reason it was chosen."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from smartreco import settings
from smartreco.cli.events import archive as archive_command
from smartreco.feedback.log import DEFAULT_ID_RETENTION_S

pytestmark = [pytest.mark.unit]

ROOT = Path(__file__).resolve().parents[2]
CRONJOB = ROOT / "manifests/base/events/archive-cronjob.yaml"
RETENTION_FLAGS = {"--keep", "--older-than"}


def test_the_cronjob_runs_the_command_with_its_default_retention_every_hour():
    job = yaml.safe_load(CRONJOB.read_text())
    assert job["spec"]["schedule"].split()[1:] == ["*", "*", "*", "*"]  # hourly, as the settings' docs say
    (container,) = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "-m", "smartreco", "events", "archive"]
    words = container.get("args", []) + container["command"]
    assert not [w for w in words if w.split("=")[0] in RETENTION_FLAGS]
    names = {e["name"] for e in container.get("env", [])}
    assert not names & {settings.EVENTS_RETENTION_S.name, settings.EVENTS_MAX_ENTRIES.name}  # the defaults hold


def test_the_command_defaults_to_the_settings():
    options = {p.name: p for p in archive_command.params}
    assert options["older_than_s"].default is None and options["keep"].default is None  # None: read the settings
    assert settings.EVENTS_RETENTION_S.name in options["older_than_s"].help
    assert settings.EVENTS_MAX_ENTRIES.name in options["keep"].help


def test_the_default_age_is_the_idempotency_window_and_the_cap_a_bound():
    assert settings.EVENTS_RETENTION_S.default == DEFAULT_ID_RETENTION_S == 24 * 3600
    assert 0 < settings.EVENTS_MAX_ENTRIES.default * 1.06 * 1024 < 50e6  # ~1.06 KiB per record in Redis
