"""`smartreco evaluate`: every registered model and the peers on the ARCHITECTURE §5 protocol."""

from __future__ import annotations

import click

from smartreco.data.sources import load_source


@click.command()
@click.option("--source", default="movielens", show_default=True,
              help="movielens, synthetic or a folder PATH")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="metrics JSON to write")
@click.option("--models", default=None, help="comma-separated model names (default: every registered model)")
@click.option("--report", default=None, type=click.Path(dir_okay=False),
              help="also write an HTML report here")
@click.option("--quiet", is_flag=True, help="no progress bars")
@click.option("--ablation/--no-ablation", default=True, show_default=True,
              help="also the hybrid without each retriever / feature group, each with its paired CI")
@click.option("--validation", is_flag=True,
              help="score a validation split cut inside train (for tuning; the test split is not read)")
def evaluate(source: str, out: str, models: str | None, report: str | None, quiet: bool,
             ablation: bool, validation: bool) -> None:
    """Fit and score models on a per-user temporal split; write metrics, per-peer bootstrap CIs."""
    from smartreco.evaluation.report import markdown_summary, write_html
    from smartreco.evaluation.run import run_evaluation, write_json
    from smartreco.models.registry import get_model, model_names

    names = [n.strip() for n in models.split(",") if n.strip()] if models else None
    for name in names or []:
        if name not in model_names():
            get_model(name)  # raises UnknownModelError: one line, exit 1, before loading any data
    data = load_source(source)
    result = run_evaluation(data, names, progress=not quiet, warn=lambda m: click.echo(m, err=True),
                            ablation=ablation, validation=validation)
    payload = result.to_json()
    write_json(payload, out)
    if report:
        write_html(result, report)
    click.echo(markdown_summary(payload))
    click.echo(f"wrote {out}" + (f" and {report}" if report else ""))
