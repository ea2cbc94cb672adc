"""smartreco/settings.py: values are read when used, bad values fail naming the variable, the README table is the
generated one, and the code reads declared settings through the module instead of raw ``os.environ``."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from smartreco import settings

pytestmark = [pytest.mark.unit]

ROOT = Path(__file__).resolve().parents[2]
CODE_DIRS = ("smartreco", "inference_graph", "components", "pipelines")


def test_values_are_read_when_used(monkeypatch):
    monkeypatch.delenv("SMARTRECO_FEATURE_SERVER", raising=False)
    assert settings.FEATURE_SERVER.get() == "http://127.0.0.1:6566"
    monkeypatch.setenv("SMARTRECO_FEATURE_SERVER", "feast-feature-server:6566")
    assert settings.FEATURE_SERVER.get() == "http://feast-feature-server:6566"  # host:port keeps working
    monkeypatch.setenv("SMARTRECO_FEATURE_SERVER", "https://feast.example/api/")
    assert settings.get("SMARTRECO_FEATURE_SERVER") == "https://feast.example/api"
    monkeypatch.setenv("SMARTRECO_FAISS_THREADS", "3")
    assert settings.FAISS_THREADS.get() == 3
    monkeypatch.setenv("SMARTRECO_FAISS_THREADS", "  ")
    assert settings.FAISS_THREADS.get() == 1  # blank = unset


def test_node_environment_overlays_the_process_environment_and_leaves_it_as_it_is(monkeypatch):
    """What an in-process graph node reads (InProcessTransport): its own variables over the process's, a blank
    one unset, nested overlays adding up; ``os.environ`` is never written."""
    monkeypatch.setenv("SMARTRECO_FAISS_THREADS", "2")
    monkeypatch.setenv("SMARTRECO_EVENTS_URL", "http://host-events:1")
    monkeypatch.setenv("SMARTRECO_FEATURE_SERVER", "host-feast:6566")
    before = dict(os.environ)
    with settings.node_environment({"SMARTRECO_FAISS_THREADS": "5", "SMARTRECO_EVENTS_URL": ""}):
        assert settings.FAISS_THREADS.get() == 5
        assert settings.EVENTS_URL.get() is None  # blank over a set variable: unset, as in an environment
        assert settings.FEATURE_SERVER.get() == "http://host-feast:6566"  # not in the overlay: the process's
        with settings.node_environment({"SMARTRECO_FAISS_THREADS": "7"}):
            assert settings.FAISS_THREADS.get() == 7 and settings.EVENTS_URL.get() is None
        assert settings.FAISS_THREADS.get() == 5
        assert dict(os.environ) == before
    assert settings.FAISS_THREADS.get() == 2 and settings.EVENTS_URL.get() == "http://host-events:1"
    assert dict(os.environ) == before


def test_node_environments_of_concurrent_threads_do_not_mix(monkeypatch):
    """Two in-process graphs serve from two threads at once: each reads its own overlay while the other's is
    active (the barrier makes both overlays live before either reads), and a bare thread reads the process's."""
    monkeypatch.setenv("SMARTRECO_FAISS_THREADS", "1")
    barrier = threading.Barrier(3, timeout=30)
    seen: dict[str, list[int]] = {}

    def node(name: str, threads: str) -> None:
        with settings.node_environment({"SMARTRECO_FAISS_THREADS": threads}):
            barrier.wait()
            seen[name] = [settings.FAISS_THREADS.get()]
            barrier.wait()
            seen[name].append(settings.FAISS_THREADS.get())

    workers = [threading.Thread(target=node, args=a) for a in (("a", "3"), ("b", "4"))]
    for w in workers:
        w.start()
    barrier.wait()
    host = settings.FAISS_THREADS.get()  # while both overlays are active
    barrier.wait()
    for w in workers:
        w.join(timeout=30)
    assert seen == {"a": [3, 3], "b": [4, 4]} and host == 1


def test_computed_defaults_follow_other_variables(monkeypatch, tmp_path):
    monkeypatch.setenv("SMARTRECO_HOME", str(tmp_path))
    monkeypatch.delenv("SMARTRECO_RUNS", raising=False)
    assert settings.RUNS.get() == tmp_path / "runs"
    monkeypatch.setenv("SMARTRECO_SERVING_IMAGE", "reg.example/serving:7")
    from smartreco import images

    assert images.SERVING_IMAGE == images.serving_image() == "reg.example/serving:7"


@pytest.mark.parametrize("name, raw, reason", [
    ("SMARTRECO_FAISS_THREADS", "two", "expected an integer"),
    ("SMARTRECO_FAISS_THREADS", "0", "must be >= 1"),
    ("SMARTRECO_METRICS_FLUSH_S", "soon", "expected a number"),
    ("SMARTRECO_METRICS_FLUSH_S", "-1", "must be >= 0"),
    ("SMARTRECO_MODEL_URIS", "[1]", "expected a JSON object, got list"),
    ("SMARTRECO_MODEL_URIS", "{oops", "expected a JSON object"),
    ("SMARTRECO_FEATURE_SERVER", "ftp://x:1", "expected host:port or http(s)://host:port"),
    ("SMARTRECO_BUNDLE_LOADER", "no_colon", "expected module.path:attribute"),
    ("HF_HUB_OFFLINE", "maybe", "expected one of 1/0"),
])
def test_a_bad_value_names_the_variable(monkeypatch, name, raw, reason):
    monkeypatch.setenv(name, raw)
    with pytest.raises(settings.SettingError) as err:
        settings.get(name)
    assert str(err.value).startswith(f"{name}={raw!r}: {reason}")
    assert settings.check_all([name]) == [str(err.value)]


def test_bad_values_reach_callers_as_their_own_clear_errors(monkeypatch):
    from smartreco.serving.model_uri import ModelUriError, uri_map

    monkeypatch.setenv("SMARTRECO_MODEL_URIS", "not json")
    with pytest.raises(ModelUriError, match="^SMARTRECO_MODEL_URIS='not json': expected a JSON object"):
        uri_map()


def test_check_cli_exits_1_naming_each_bad_variable():
    env = {"PATH": "/usr/bin:/bin", "SMARTRECO_FAISS_THREADS": "x", "SMARTRECO_METRICS_FLUSH_S": "y"}
    proc = subprocess.run([sys.executable, "-m", "smartreco.settings", "--check"], capture_output=True, text=True,
                          env=env, cwd=ROOT)
    assert proc.returncode == 1
    assert "SMARTRECO_FAISS_THREADS='x'" in proc.stderr and "SMARTRECO_METRICS_FLUSH_S='y'" in proc.stderr


def test_every_setting_is_well_formed():
    for s in settings.SETTINGS.values():
        assert s.doc and s.needs, s.name
        if s.cluster == "local":  # a variable only used off-cluster is needed by no cluster deployable
            assert not [n for n in s.needs if n.startswith(("node:", "init:"))], s.name
        if s.default is not None:
            s.default_value()  # computed defaults do not fail


def test_readme_configuration_table_is_the_generated_one():
    readme = (ROOT / "README.md").read_text()
    assert settings.markdown_table().strip() in readme, "regenerate: python -m smartreco.settings --markdown"


def _sources() -> list[Path]:
    return [p for d in CODE_DIRS for p in (ROOT / d).rglob("*.py") if p.name != "settings.py"]


def _literal_env_reads(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, name) of ``os.environ.get("X")``, ``os.getenv("X")`` and ``os.environ["X"]`` loads."""
    out = []
    for node in ast.walk(tree):
        target = None
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = ast.unparse(node.func)
            if func in ("os.environ.get", "os.getenv", "environ.get"):
                target = node.args[0].value
        elif (isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load)
              and isinstance(node.slice, ast.Constant) and ast.unparse(node.value) in ("os.environ", "environ")):
            target = node.slice.value
        if isinstance(target, str):
            out.append((node.lineno, target))
    return out


def test_declared_variables_are_read_through_settings():
    found = [f"{p.relative_to(ROOT)}:{line}: {name}" for p in _sources()
             for line, name in _literal_env_reads(ast.parse(p.read_text()))
             if name in settings.SETTINGS and settings.SETTINGS[name].reader != "os"]  # HOME: the OS's own
    assert found == [], "read these with smartreco.settings (<SETTING>.get())"


def test_every_smartreco_variable_in_the_code_is_declared():
    pattern = re.compile(r"\bSMARTRECO_[A-Z0-9_]*[A-Z0-9]\b")
    places = [*_sources(), *(ROOT / "scripts").glob("*.sh"), *(ROOT / "feature_repo").glob("*.py"),
              *(ROOT / "manifests").rglob("*.yaml"), ROOT / "manifests/tools/validate.py"]
    undeclared = {f"{name} ({p.relative_to(ROOT)})" for p in places
                  for name in pattern.findall(p.read_text()) if name not in settings.SETTINGS}
    assert undeclared == set(), "declare them in smartreco/settings.py"


def test_every_declared_smartreco_variable_is_read_somewhere():
    """A declared variable that nothing reads is a stale name (what a ConfigMap would then set in vain)."""
    attr = {s.name: a for a, s in vars(settings).items() if isinstance(s, settings.Setting)}
    places = (*_sources(), *(ROOT / "scripts").glob("*.sh"), *(ROOT / "feature_repo").glob("*.py"),
              ROOT / "manifests/tools/validate.py")
    texts = [p.read_text() for p in places]
    unread = [s.name for s in settings.SETTINGS.values() if s.reader == "smartreco"
              and not any(s.name in t or (s.name in attr and f"settings.{attr[s.name]}" in t) for t in texts)]
    assert unread == []
