"""The committed compiled pipelines (``pipelines/compiled/*.yaml``, what a person uploads in the Kubeflow UI
without a Python environment) are exactly what the code compiles to: a change to a pipeline or a component
shows up as a reviewed YAML diff, never as a silent difference between the code and the uploaded file."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from pipelines import compile as PC
from smartreco import settings

pytestmark = [pytest.mark.unit]

GOLDEN = Path(__file__).resolve().parents[2] / "pipelines" / "compiled"
REGENERATE = "smartreco pipeline compile --out pipelines/compiled"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict[str, Path]:
    with pytest.MonkeyPatch.context() as mp:  # the default image names, whatever this shell exports
        mp.delenv(settings.PIPELINE_IMAGE.name, raising=False)
        mp.delenv(settings.SERVING_IMAGE.name, raising=False)
        return PC.compile_all(tmp_path_factory.mktemp("compiled"))


def test_every_pipeline_has_a_committed_yaml_and_nothing_else_is_there(compiled):
    assert sorted(p.name for p in GOLDEN.glob("*.yaml")) == sorted(f"{name}.yaml" for name in PC.PIPELINES)


@pytest.mark.parametrize("name", sorted(PC.PIPELINES))
def test_the_committed_yaml_is_what_the_code_compiles_to(compiled, name):
    want = (GOLDEN / f"{name}.yaml").read_text().splitlines(keepends=True)
    got = compiled[name].read_text().splitlines(keepends=True)
    diff = "".join(difflib.unified_diff(want, got, f"pipelines/compiled/{name}.yaml", "compiled now", n=1))
    assert not diff, f"the compiled {name} pipeline changed: review the diff, then run `{REGENERATE}`\n{diff[:4000]}"
