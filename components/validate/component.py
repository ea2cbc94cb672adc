"""KFP component: run the data checks; HTML (Evidently) + Markdown + JSON + Metrics; fail on blocking."""

from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Output

from components.common import component


@component()
def validate(
    dataset: Input[Dataset],
    report: Output[HTML],
    summary: Output[Markdown],
    result: Output[Artifact],
    metrics: Output[Metrics],
    reference_path: str = "",
    max_age_days: float = -1.0,
    fail_on_error: bool = True,
) -> bool:
    """Returns True when no blocking check failed; raises (failing the run) otherwise if fail_on_error.

    ``max_age_days`` < 0 skips the freshness warning; ``reference_path`` enables the drift checks."""
    from pathlib import Path

    from smartreco.validation import load_raw, validate_data
    from smartreco.validation.report import write_html_report

    ref = load_raw(reference_path) if reference_path else None
    res = validate_data(
        load_raw(Path(dataset.path)), reference=ref, max_age_days=None if max_age_days < 0 else max_age_days
    )
    write_html_report(res, report.path)
    Path(summary.path).write_text(res.to_markdown())
    res.to_json(result.path)
    for key, value in res.metrics().items():
        metrics.log_metric(key, value)
    print(res.to_markdown())
    if fail_on_error:
        res.raise_for_status()
    return res.passed
