"""The session's one subprocess training run (e2e_runs.py says why one serves both e2e modules)."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_runs import PARITY, PROMOTE, train


@pytest.fixture(scope="session")
def promoted_subprocess_run(tmp_path_factory) -> tuple[dict, Path]:
    """The first training run into a fresh registry, on the parity configuration, whose gate must promote
    (margin 1): ``(run JSON, runs folder)``."""
    runs = tmp_path_factory.mktemp("e2e") / "runs"
    runs.mkdir(parents=True)
    return train(runs, PROMOTE, "--param", f"epochs={PARITY['epochs']}"), runs
