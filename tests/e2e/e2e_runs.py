"""The e2e modules' subprocess training run (`smartreco pipeline run training --local`), shared.

test_pipelines_e2e needs a promoting subprocess run on MovieLens (gate, deploy, batch) and
test_containers_pipeline needs the subprocess runner's metrics on the parity configuration
(``benchmarks/containers.py`` PARITY: 100 users, 3 epochs, seed 7) to compare the docker run with. Both
are the same pipeline on the same data and seeds, and the gate's margin is read only after ``evaluate``, so
one run serves both: CI pays for one subprocess pipeline, not two (~6 min each at the load CI sees,
benchmarks/results/containers.json). Session scope; the environment is set only while the run runs.

Every e2e run (both runners, every module) shares one MiniLM vector cache, the project's ``runs/embeddings``
(:func:`shared_embedding_cache`): the cache is keyed by the text's content hash, so a hit returns the vectors an
encode of the same text wrote, and what the runs prove (steps, runners, gate, deploy, metric parity) does not
depend on whether the vectors were encoded in this run or an earlier one. A fresh clone still encodes once (the
first run's first encoding step), so the MiniLM path itself runs in CI.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

import pytest

from smartreco.cli import main
from smartreco.paths import project_root

ROOT = Path(__file__).resolve().parents[2]
#: the configuration the committed docker/subprocess parity result was measured on
PARITY = json.loads((ROOT / "benchmarks" / "results" / "containers.json").read_text())["pipeline_by_runner"]["config"]
#: the gate's margin fixes its outcome whatever the sample gives (metric values lie in [0, 1]):
#: >= 1 promotes any measured candidate, <= -1 none (smartreco.tracking.gate.promotion_decision)
PROMOTE, REJECT = "1.0", "-1.0"


def shared_embedding_cache() -> Path:
    """The project's ``runs/embeddings`` (created); returns it, for the pipeline's ``embedding_cache_dir``, which
    every step that encodes item text reads (build-features, train-cb, evaluate: pipelines/training.py).

    Why the project's folder and not ``<runs>/embeddings``: each test's runs folder is fresh, so a cache inside
    it would be empty at every run (one encode of the ~5k MovieLens item texts per run, not per CI run). Why
    created here: in a fresh clone ``runs/embeddings`` does not exist, and the docker runner mounts only argument
    folders that exist, so what the first step encoded would stay in its container."""
    cache = project_root() / "runs" / "embeddings"
    cache.mkdir(parents=True, exist_ok=True)
    return cache


def sample_users() -> str:
    """``SMARTRECO_E2E_SAMPLE_USERS`` (0: all of MovieLens), else the parity configuration's sample."""
    return os.environ.get("SMARTRECO_E2E_SAMPLE_USERS", str(PARITY["sample_users"]))


def train(runs: Path, gate_margin: str, *extra: str) -> dict:
    """One `smartreco pipeline run training --local --runner subprocess` into ``runs`` (its own MLflow
    registry and deploy record); the run's JSON."""
    cache = shared_embedding_cache()
    buf = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(buf):
        mp.setenv("SMARTRECO_RUNS", str(runs))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        rc = main(
            [
                "pipeline",
                "run",
                "training",
                "--local",
                "--runner",
                "subprocess",
                "--json",
                "--sample-users",
                sample_users(),
                "--param",
                "deploy_target=local",
                "--param",
                f"gate_margin={gate_margin}",
                # MiniLM vectors are cached by content hash in the project's runs folder across test runs
                "--param",
                f"embedding_cache_dir={cache}",
                *extra,
            ]
        )
    assert rc == 0, buf.getvalue()[-2000:]
    return json.loads(buf.getvalue())
