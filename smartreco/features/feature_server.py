"""Run ``feast serve`` for a feature repo until a lookup answers: the HTTP online store that the graph's
feast-free ``OnlineFeatureClient`` talks to (tests and the features benchmark start it the same way)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from smartreco.errors import SmartRecoError
from smartreco.features.online_client import OnlineFeatureClient
from smartreco.ports import free_port

#: options every ``feast serve`` of the project gets (this helper, ``scripts/demo.sh``, the Feast Deployment):
#: Feast's default ``--max-requests 1000`` makes gunicorn recycle a worker every ~1,000 lookups, and a new worker
#: takes ~2 s to import Feast and load the registry; with one worker every lookup in that window waits, which the
#: graph saw as a node timing out at its 2 s deadline (every ~10 s at 100 req/s). Memory growth is bounded by the
#: pod's memory limit instead (Kubernetes restarts the pod, behind its Service, with the other replica serving).
FEAST_SERVE_OPTIONS: tuple[str, ...] = ("--max-requests", "0", "--no-access-log")


@contextlib.contextmanager
def feature_server(repo_dir: str | Path, timeout_s: float = 120.0) -> Iterator[OnlineFeatureClient]:
    """A client of a ``feast serve`` started in ``repo_dir`` on a free loopback port; stopped on exit."""
    port = free_port()
    feast = Path(sys.executable).parent / "feast"
    proc = subprocess.Popen(
        [str(feast), "serve", "--host", "127.0.0.1", "-p", str(port), *FEAST_SERVE_OPTIONS],
        cwd=repo_dir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = OnlineFeatureClient(f"http://127.0.0.1:{port}")
        deadline = time.time() + timeout_s
        while True:
            try:
                client.get_user_features("nobody")
                break
            except Exception as exc:
                if proc.poll() is not None:
                    raise SmartRecoError(f"feast serve exited with {proc.returncode} before answering") from exc
                if time.time() > deadline:
                    raise SmartRecoError(f"feast serve did not answer within {timeout_s:.0f} s") from exc
                time.sleep(0.3)
        yield client
    finally:
        proc.terminate()
        proc.wait(timeout=30)
