"""Browser-test fixtures: a real local graph (the executor, in-process nodes, on the category fake
bundle, started from the serving venv), ``smartreco web`` in a thread, and headless Debian Chromium
driven by Selenium. A missing piece skips with its reason (and fails under CI=true: tests/conftest.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from smartreco.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
SERVING_PYTHON = ROOT / ".venv-serving" / "bin" / "python"
CHROMIUM = os.environ.get("SMARTRECO_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("SMARTRECO_CHROMEDRIVER", "/usr/bin/chromedriver")
#: the fake bundle's catalogue: users "1".."40" are known
N_ITEMS, N_USERS = 240, 40


def browser_problem() -> str | None:
    """Why the browser tests cannot run here (None: they can)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (dev extra)"
    for path, what in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromedriver")):
        if not (Path(path).is_file() or shutil.which(path)):
            return f"{what} not found at {path} (scripts/tools.sh installs Debian's chromium chromium-driver)"
    if not SERVING_PYTHON.is_file():
        return f"{SERVING_PYTHON} missing: the graph runs in the serving venv (make setup)"
    return None


def wait_http(url: str, proc: subprocess.Popen | None = None, timeout_s: float = 120.0,
              log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
            raise RuntimeError(f"process exited ({proc.returncode}) before {url} answered:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout_s:.0f} s")


@pytest.fixture(scope="session")
def browser_ready() -> None:
    problem = browser_problem()
    if problem:
        pytest.skip(f"browser: {problem}")


class Graph:
    """``python -m inference_graph.executor --in-process`` on the category bundle, in the serving venv."""

    def __init__(self, tmp: Path, mode: str = "fixed") -> None:
        sys.path.insert(0, str(ROOT / "tests" / "integration"))
        import graph_fake_bundle

        bundle = graph_fake_bundle.write(tmp / "bundle", N_ITEMS, N_USERS, version="category-1")
        self.log_dir = tmp / "events"
        self.port = free_port()
        params = ("model_uri", "cf_model_uri", "cb_model_uri")  # inference_graph.executor.fusion.MODEL_URI_PARAMS
        sets = {"*": dict.fromkeys(params, str(bundle)), "ab-router": {"store": str(tmp / "arms.sqlite"), "mode": mode}}
        env = {
            **os.environ,
            "SMARTRECO_BUNDLE_LOADER": "category_bundle:load",
            "SMARTRECO_FEATURE_READER": "graph_fake_bundle:read_features",
            "PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "browser"), str(ROOT / "tests" / "integration"),
                                           str(ROOT)]),
            "SMARTRECO_RUNS": str(tmp / "runs"),
        }
        env.pop("SMARTRECO_API_TOKEN", None)
        env.pop("SMARTRECO_API_TOKEN_FILE", None)
        self.log = tmp / "graph.log"
        argv = [str(SERVING_PYTHON), "-m", "inference_graph.executor", "--in-process", "--port", str(self.port),
                "--grpc-port", str(free_port()), "--set", json.dumps(sets), "--cache", "off", "--no-push",
                "--feedback-log", str(self.log_dir), "--log-dir", str(tmp / "node-logs")]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_http(f"{self.url}/health/ping", self.proc, log=self.log)
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


class WebServer:
    """``smartreco web``'s app under uvicorn in a background thread."""

    def __init__(self, graph_url: str, event_log: Path, drift_search: Path) -> None:
        import uvicorn

        from smartreco.web.app import WebConfig, create_app

        self.port = free_port()
        app = create_app(WebConfig(graph_url=graph_url, event_log=event_log, drift_search=drift_search))
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_http(f"{self.url}/health/ping", timeout_s=30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def graph(browser_ready, tmp_path_factory):  # noqa: ARG001
    g = Graph(tmp_path_factory.mktemp("graph"))
    yield g
    g.stop()


@pytest.fixture(scope="module")
def web(graph, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        runs = tmp_path_factory.mktemp("web-runs")
        mp.setenv("SMARTRECO_RUNS", str(runs))  # the model page reads MLflow/deploy records here: none
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        w = WebServer(graph.url, graph.log_dir, runs)
        yield w
        w.stop()


def make_driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1600"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


@pytest.fixture(scope="module")
def driver(browser_ready):  # noqa: ARG001
    d = make_driver()
    yield d
    d.quit()


def console_errors(driver) -> list[str]:
    """SEVERE entries of the browser console since the last call (JS errors, failed loads)."""
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
