"""KFP component: MLflow run + registry. New versions get `challenger`; `champion` only through the gate
(beats the current champion AND MostPopular on NDCG@10)."""

from kfp.dsl import Dataset, Input, Markdown, Model, Output

from components.common import component


@component()
def register(bundle: Input[Model], report: Input[Dataset], summary: Output[Markdown], tracking_uri: str = "",
             gate_margin: float = 0.01) -> str:
    """Returns the registered smartreco-hybrid version. ``tracking_uri`` overrides MLFLOW_TRACKING_URI;
    ``gate_margin``: the promotion gate's non-inferiority margin delta (smartreco.tracking.gate: promote
    when the paired CI of challenger - champion on the same split has its lower bound above -delta)."""
    import json
    import os
    from pathlib import Path

    from smartreco import settings
    from smartreco.training import register as run

    if tracking_uri:
        os.environ[settings.MLFLOW_TRACKING_URI.name] = tracking_uri  # read by smartreco.tracking when used
    evaluation = json.loads((Path(report.path) / "evaluation.json").read_text())
    result = run(bundle.path, evaluation, report_dir=report.path, run_name="kfp-register", gate_margin=gate_margin)
    lines = [f"- `{name}` v{r['version']}: {'**champion**' if r['promote'] else 'challenger'} "
             f"({'; '.join(r['reasons'])})" for name, r in result["registered"].items()]
    Path(summary.path).write_text(f"# Registry\n\nMLflow run `{result['run_id']}`\n\n" + "\n".join(lines) + "\n")
    return str(result["registered"]["smartreco-hybrid"]["version"])
