"""Shared pytest hooks.

- The two environments are split per module, statically: a module whose module-level ``pytestmark`` names
  ``pytest.mark.serving`` (read with ``ast``, no import) runs in the serving venv, every other module in the
  pipeline venv. Before collecting, every test file is classified; one that neither run would collect
  (``mark.serving`` set anywhere else, a ``pytestmark`` that is not a literal list, a test file named so pytest
  ignores it) stops the run with the reason.
- `container` tests need a Docker engine and `redis` tests a Redis server (both started by
  `scripts/services.sh start`): without one they skip with the reason on a developer machine.
- With CI=true no skip passes: a skipped test (the engine, Redis, seldon-core, kubectl, promtool or a browser
  missing) fails, and so does a module that skips while it is collected (a module-level
  ``pytest.importorskip``). An xfail is not a skip.
- ``smartreco_images``: the project's images, built once per session when missing or stale.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import os
from pathlib import Path

import pytest

#: The serving venv (Python 3.12, no kfp/torch) runs only the modules whose ``pytestmark`` carries the
#: `serving` marker; the rest import pipeline-only packages and belong to the `.venv` run (scripts/test.sh).
_SERVING_ENV = importlib.util.find_spec("kfp") is None
_TESTS = Path(__file__).resolve().parent


class SplitError(Exception):
    """A test module whose environment cannot be read statically (neither run would be sure to collect it)."""


def _mark_name(node: ast.AST) -> str | None:
    """``serving`` for ``pytest.mark.serving`` / ``pytest.mark.serving(...)``; None for anything else."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) and node.value.attr == "mark":
        return node.attr
    return None


def module_markers(source: str, name: str = "<module>") -> set[str]:
    """The marker names of a module's module-level ``pytestmark``, read without importing it.

    Raises SplitError when ``pytestmark`` is not a literal (list/tuple of) ``pytest.mark.X``, or when
    ``mark.serving`` appears anywhere else (a function's decorator, an overwritten ``pytestmark``): the
    environments are chosen per module, so such a test would run in neither."""
    tree = ast.parse(source, filename=name)
    marks: set[str] = set()
    counted: set[int] = set()
    for stmt in tree.body:
        target, value = None, None
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target, value = stmt.targets[0], stmt.value
        elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign)):
            target, value = stmt.target, stmt.value
        if not (isinstance(target, ast.Name) and target.id == "pytestmark") or value is None:
            continue
        items = value.elts if isinstance(value, (ast.List, ast.Tuple)) else [value]
        found = [_mark_name(item) for item in items]
        if None in found:
            raise SplitError(f"{name}:{stmt.lineno}: pytestmark must be a literal list of pytest.mark.<name> "
                             "(scripts/test.sh reads it without importing the module)")
        if not isinstance(stmt, ast.AugAssign):
            marks, counted = set(), set()
        marks |= set(found)
        counted |= {id(n) for item in items for n in ast.walk(item)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "serving" and _mark_name(node) and id(node) not in counted:
            raise SplitError(f"{name}:{node.lineno}: pytest.mark.serving outside the module's final pytestmark: "
                             "the environments are split per module, so this test would run in neither; "
                             "move it to a module whose pytestmark carries `serving`")
    return marks


def environment_of(path: Path) -> str:
    """``serving`` or ``pipeline``: which venv's run collects this test module (SplitError: neither can tell)."""
    return "serving" if "serving" in module_markers(path.read_text(encoding="utf-8"), str(path)) else "pipeline"


def _is_test_file(path: Path) -> bool:
    return path.suffix == ".py" and (path.name.startswith("test_") or path.name.endswith("_test.py"))


def split_problems(root: Path = _TESTS) -> list[str]:
    """Every reason a test module under ``root`` would be collected by neither environment."""
    problems: list[str] = []
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" in path.parts or path.name in ("conftest.py", "__init__.py"):
            continue
        rel = path.relative_to(root.parent)
        if _is_test_file(path):
            try:
                environment_of(path)
            except (SplitError, SyntaxError) as exc:
                problems.append(str(exc).replace(str(path), str(rel)))
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        tests = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                 and (n.name.startswith("test_") or n.name.startswith("Test"))]
        if tests:
            problems.append(f"{rel}: defines {tests[0]} but pytest collects only test_*.py / *_test.py files")
    return problems


def pytest_sessionstart(session: pytest.Session) -> None:
    problems = split_problems()
    if problems:
        pytest.exit("test modules that neither environment would collect:\n  " + "\n  ".join(problems),
                    returncode=pytest.ExitCode.USAGE_ERROR)


def pytest_report_header(config: pytest.Config) -> str:  # noqa: ARG001
    env = "serving (.venv-serving)" if _SERVING_ENV else "pipeline (.venv)"
    rule = "CI=true: every skip fails the run" if _in_ci() else "not CI: a missing service skips with the reason"
    return f"smartreco: {env} environment, modules split by static pytestmark; {rule}"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:  # noqa: ARG001
    if not _is_test_file(collection_path) or _TESTS not in collection_path.resolve().parents:
        return None
    try:
        env = environment_of(collection_path)
    except (SplitError, SyntaxError):
        return None  # pytest_sessionstart has already stopped the run with the reason
    return env != ("serving" if _SERVING_ENV else "pipeline")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@pytest.fixture(autouse=True)
def _mlflow_tracking_uri_restored():
    """``mlflow.set_tracking_uri`` exports ``MLFLOW_TRACKING_URI`` into ``os.environ`` (for its subprocesses), and
    ``monkeypatch`` cannot undo a variable it never set: a test that configures MLflow pointed every later test,
    and the pipeline steps they start, at its store (CI: the e2e gate test read the docker run's registry).
    Each test ends with the variable as it found it."""
    name = "MLFLOW_TRACKING_URI"
    before = os.environ.get(name)
    yield
    if before is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = before


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


#: the images' build has its own bound (from scratch ~20-25 min on a busy 2-core machine), not a test's timeout
_IMAGE_BUILD_LIMIT_S = 5400


@pytest.fixture(scope="session")
def smartreco_images(request: pytest.FixtureRequest) -> dict[str, dict]:
    """Both project images (``{"pipeline"|"serving": BuildResult.as_dict()}``), built when missing or stale by
    ``smartreco images build`` (idempotent by inputs hash: seconds when up to date, ~20 min from scratch on a
    2-core machine), once per session, so no container test depends on another test's order. Runs the
    pipeline venv's CLI from either venv; a machine-wide lock keeps two sessions from building the same tags
    at once. Every test that runs a project image asks for this fixture."""
    import fcntl
    import json
    import signal
    import subprocess
    import sys
    import tempfile
    import threading
    import time

    root = _TESTS.parent
    venv_python = root / ".venv" / "bin" / "python"
    python = str(venv_python) if venv_python.exists() else sys.executable
    capture = request.config.pluginmanager.getplugin("capturemanager")
    terminal = request.config.pluginmanager.getplugin("terminalreporter")

    def say(line: str) -> None:
        if terminal is None:
            return
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            terminal.write_line(line)

    lock_path = Path(tempfile.gettempdir()) / "smartreco-images-build.lock"
    start = time.monotonic()
    # the build belongs to the session, not to the test that happens to ask first: pause that test's
    # pytest-timeout alarm (signal method) while building, and bound the build on its own instead
    paused = signal.setitimer(signal.ITIMER_REAL, 0)[0] if hasattr(signal, "setitimer") else 0.0
    try:
        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            say("[images] smartreco images build: making sure the project images exist for the container tests "
                "(seconds when up to date, ~20 min from scratch) ...")
            proc = subprocess.Popen([python, "-m", "smartreco", "images", "build", "--json"], cwd=root,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            watchdog = threading.Timer(_IMAGE_BUILD_LIMIT_S, proc.kill)
            watchdog.start()
            tail: list[str] = []
            for line in proc.stderr:
                tail = [*tail[-40:], line.rstrip()]
                if line.startswith(("[build]", "[base]", "[wheels]")) or "error" in line.lower():
                    say(f"[images] {line.rstrip()}")
            out = proc.stdout.read()
            rc = proc.wait()
            watchdog.cancel()
    finally:
        if paused > 0:
            signal.setitimer(signal.ITIMER_REAL, paused)
    if rc != 0:
        pytest.fail("`smartreco images build` failed (exit {}{}):\n{}".format(
            rc, f", killed after {_IMAGE_BUILD_LIMIT_S} s" if rc == -9 else "", "\n".join(tail)), pytrace=False)
    results = {r["name"]: r for r in json.loads(out)}
    say(f"[images] ready in {time.monotonic() - start:.0f} s: "
        + ", ".join(f"{r['tag']} ({'built' if r['built'] else 'up to date'})" for r in results.values()))
    assert set(results) >= {"pipeline", "serving"}, sorted(results)
    return results


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


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    return reason.removeprefix("Skipped: ")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # noqa: ARG001
    """CI=true: a skipped test (set-up, call or tear-down) fails; an xfail stays an xfail."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and _in_ci() and not hasattr(report, "wasxfail"):
        marker = next((m for m in (*_SERVICE_MARKERS, "browser", "serving") if item.get_closest_marker(m)), None)
        what = f"{marker} test" if marker else "test"
        report.outcome = "failed"
        report.longrepr = f"CI=true: {what} skipped ({_skip_reason(report)}); CI must run it"


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    """CI=true: a module that skips while it is collected (module-level ``pytest.importorskip`` of seldon-core,
    a browser driver, ...) is a collection error, which fails the run."""
    report = yield
    if report.outcome == "skipped" and _in_ci():
        report.outcome = "failed"
        report.longrepr = (f"CI=true: {collector.nodeid or collector.name} skipped at collection "
                           f"({_skip_reason(report)}); CI must run every collected module")
    return report
