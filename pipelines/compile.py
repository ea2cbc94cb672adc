"""Compile the pipelines to KFP IR YAML (what the Kubeflow UI uploads); one registry of pipelines."""

from __future__ import annotations

import importlib
from pathlib import Path

from smartreco.errors import SmartRecoError

#: name -> (module, pipeline function)
PIPELINES: dict[str, tuple[str, str]] = {
    "training": ("pipelines.training", "training_pipeline"),
    "drift": ("pipelines.drift", "drift_pipeline"),
    "batch": ("pipelines.batch", "batch_pipeline"),
}
DEFAULT_OUT = Path("build") / "pipelines"


def get_pipeline(name: str):
    if name not in PIPELINES:
        raise SmartRecoError(f"pipeline: unknown {name!r} (one of {', '.join(PIPELINES)})")
    module, attr = PIPELINES[name]
    return getattr(importlib.import_module(module), attr)


def compile_pipeline(name: str, out_dir: Path | str = DEFAULT_OUT) -> Path:
    """``<out_dir>/<name>.yaml``."""
    from kfp import compiler

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.yaml"
    compiler.Compiler().compile(get_pipeline(name), str(path))
    return path


def compile_all(out_dir: Path | str = DEFAULT_OUT, names: list[str] | None = None) -> dict[str, Path]:
    return {name: compile_pipeline(name, out_dir) for name in (names or list(PIPELINES))}
