"""One evaluation run end to end (load -> split -> every model -> comparisons), shared by
`smartreco evaluate`, `benchmarks/accuracy.py` and the KFP evaluate component."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from smartreco.data.canonical import CanonicalData
from smartreco.evaluation.evaluator import EvaluationResult, Evaluator, evaluate_models
from smartreco.models.registry import PEERS, build_models


def run_evaluation(
    data: CanonicalData,
    model_names: list[str] | None = None,
    *,
    progress: bool = True,
    warn: Callable[[str], None] = print,
) -> EvaluationResult:
    """Evaluate ``model_names`` (default: every registered model) in one run on the §5 protocol.

    Models that cannot be imported are skipped with a warning and listed under ``skipped``."""
    models, skipped = build_models(model_names, warn=warn)
    evaluator = Evaluator.from_data(data, progress=progress)
    return evaluate_models(
        evaluator, models, skipped=skipped, peers=PEERS,
        extra_protocol={
            "source": data.source,
            "models_requested": list(model_names) if model_names else "all registered",
            "models_run": list(models),
        },
    )


def _jsonable(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def write_json(payload: dict, path: Path | str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=_jsonable) + "\n", encoding="utf-8")
    return path
