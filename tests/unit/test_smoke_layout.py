"""The fixed top-level layout and the one-definition rules the rest of the project relies on."""

import tomllib
from pathlib import Path

import pytest

pytestmark = [pytest.mark.unit]

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "name",
    ["components", "pipelines", "feature_repo", "inference_graph", "manifests", "monitoring", "tests",
     "smartreco", "benchmarks", "data", "pyproject.toml", "README.md"],
)
def test_top_level_layout(name: str) -> None:
    assert (ROOT / name).exists(), f"{name} missing from the fixed layout"


def test_extras_are_pinned_exactly() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for extra in ("pipeline", "serving"):
        loose = [r for r in project["optional-dependencies"][extra] if "==" not in r and "<" not in r]
        # a few serving helpers are allowed a range, but the heavy stack must be exact
        assert not [r for r in loose if r.split("[")[0] in {"torch", "seldon-core", "mlflow", "kfp", "feast"}]
    serving = " ".join(project["optional-dependencies"]["serving"])
    assert "torch" not in serving, "the serving environment must not pull torch"


def test_bundled_movielens_licence_travels_with_data() -> None:
    folder = ROOT / "data" / "ml-latest-small"
    assert (folder / "README.txt").read_text().count("Usage License") == 1
    assert (folder / "SHA256SUMS").exists()
