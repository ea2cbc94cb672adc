"""`smartreco evaluate`: every registered model and the peers on the ARCHITECTURE §5 protocol."""

from __future__ import annotations

import click

from smartreco.data.sources import load_source


def parse_overrides(pairs: tuple[str, ...] | list[str]) -> dict:
    """``KEY=VALUE`` pairs -> HybridConfig overrides, each value parsed as the field's type."""
    import dataclasses

    from smartreco.models.hybrid import HybridConfig

    types = {f.name: type(f.default) for f in dataclasses.fields(HybridConfig)}
    out: dict = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in types:
            raise click.BadParameter(f"expected KEY=VALUE with KEY a HybridConfig field, got {pair!r}",
                                     param_hint="--hybrid-config")
        kind = types[key]
        out[key] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
    return out


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
@click.option("--hybrid-config", "hybrid_config", multiple=True, metavar="KEY=VALUE",
              help="override a HybridConfig field (repeatable), e.g. cf_backend=svd; recorded in the result")
def evaluate(source: str, out: str, models: str | None, report: str | None, quiet: bool,
             ablation: bool, validation: bool, hybrid_config: tuple[str, ...]) -> None:
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
                            ablation=ablation, validation=validation,
                            hybrid_config=parse_overrides(hybrid_config))
    payload = result.to_json()
    write_json(payload, out)
    if report:
        write_html(result, report)
    click.echo(markdown_summary(payload))
    click.echo(f"wrote {out}" + (f" and {report}" if report else ""))
