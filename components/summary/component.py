"""KFP component: the gate's outcome (registry aliases + the pipeline's floor) and the Markdown run summary."""

from kfp.dsl import Artifact, Dataset, Input, Markdown, Output

from components.common import component


@component()
def summary(report: Input[Dataset], summary: Output[Markdown], gate: Output[Artifact], version: str,
            metric_value: float, gate_min_ndcg: float = 0.0, params: str = "{}") -> bool:
    """Returns ``promoted`` (the pipeline's ``dsl.If``; a single output, which kfp.local's condition
    evaluator resolves, unlike NamedTuple fields): True only when the registry made ``version`` the
    champion AND ``metric_value`` >= ``gate_min_ndcg`` (else the version is demoted back to challenger)."""
    import json
    from pathlib import Path

    from smartreco.promotion import gate_outcome
    from smartreco.run_summary import load_json, run_summary

    outcome = gate_outcome(version, metric_value, gate_min_ndcg)
    Path(gate.path).write_text(json.dumps(outcome, indent=2))
    text = run_summary(json.loads(params or "{}"), load_json(Path(report.path) / "evaluation.json"), outcome)
    text += "\n" + outcome["report"]  # the gate's report: decision, paired CI vs the champion, margin delta
    Path(summary.path).write_text(text)
    print(text)
    return bool(outcome["promoted"])
