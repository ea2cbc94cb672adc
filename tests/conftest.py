"""Shared pytest hooks. `container` tests need a Docker engine and `redis` tests a Redis server (both started by
`scripts/services.sh start`): without one they skip with the reason on a developer machine, but with CI=true a
skipped container or redis test counts as a failure."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

#: The serving venv (Python 3.12, no kfp/torch) runs only the modules that carry the `serving`
#: marker; the rest import pipeline-only packages and belong to the `.venv` run (scripts/test.sh).
_SERVING_ENV = importlib.util.find_spec("kfp") is None


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:  # noqa: ARG001
    if collection_path.suffix != ".py" or not collection_path.name.startswith("test_"):
        return None
    text = collection_path.read_text(encoding="utf-8")
    if _SERVING_ENV:
        return "mark.serving" not in text
    # serving-only modules (they need seldon-core) belong to the serving run, not a skip here
    return 'importorskip("seldon_core")' in text or None


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def manifest_tools():
    """``manifests/tools/validate.py`` as a module, with the kubectl it runs: skips without one (the reason
    shown), fails under CI=true (scripts/tools.sh installs it there)."""
    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("smartreco_manifest_validate", root / "manifests/tools/validate.py")
    tools = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tools)
    try:
        tools.kubectl()
    except tools.ToolMissing as exc:
        if _in_ci():
            pytest.fail(f"CI=true: {exc}")
        pytest.skip(str(exc))
    return tools


#: markers whose tests need a running service; `_service_problem` says why one is not there (None: it is)
_SERVICE_MARKERS = ("container", "redis")


def _service_problem(marker: str) -> str | None:
    if marker == "container":
        from smartreco.containers.engine import engine_problem

        return engine_problem()
    from smartreco.features.store import redis_problem

    return redis_problem()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for marker in _SERVICE_MARKERS:
        needing = [item for item in items if item.get_closest_marker(marker)]
        if not needing:
            continue
        problem = _service_problem(marker)
        if problem:
            skip = pytest.mark.skip(reason=f"{marker}: {problem} (start one: bash scripts/services.sh start)")
            for item in needing:
                item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # noqa: ARG001
    outcome = yield
    report = outcome.get_result()
    marker = next((m for m in _SERVICE_MARKERS if item.get_closest_marker(m)), None)
    if report.skipped and _in_ci() and marker:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"CI=true: {marker} test skipped ({reason}); CI must run it"
