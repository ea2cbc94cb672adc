"""`smartreco ab ...`: A/B analysis report from the feedback log, and the MovieLens replay simulator."""

from __future__ import annotations

import json
from pathlib import Path

import click

from smartreco.errors import DataError

#: CLI model names -> class names in smartreco.models.baselines
BASELINES = {
    "ease": "EASE",
    "most_popular": "MostPopular",
    "popular": "MostPopular",
    "itemknn": "ItemKNN",
    "als": "ALS",
}


def _find_experiment(logs: Path, explicit: Path | None) -> Path | None:
    if explicit is not None:
        return explicit
    for cand in (logs / "experiment.json", logs.parent / "experiment.json"):
        if cand.exists():
            return cand
    return None


@click.group()
def ab() -> None:
    """A/B experiments: analysis report and a replay simulator."""


@ab.command()
@click.option(
    "--logs",
    "logs",
    required=True,
    help="event log: the event service's --log-dir (segment-*.log files), or redis://HOST:PORT/DB (the shared "
    "stream, read after its archive in $SMARTRECO_EVENTS_ARCHIVE)",
)
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="output directory")
@click.option(
    "--experiment",
    "experiment_path",
    type=click.Path(path_type=Path),
    default=None,
    help="experiment.json (default: next to or inside --logs; else inferred from the logs)",
)
def report(logs: str, out: Path, experiment_path: Path | None) -> None:
    """Per-arm CTR/conversion with CIs, z/Welch/sequential tests, SRM, sample size, recommendation, and
    the impressions the log should hold but does not (feedback whose request id has no impression)."""
    from smartreco.experiments.analysis import analyse
    from smartreco.experiments.design import Experiment
    from smartreco.experiments.report import missing_impressions_line, write_report
    from smartreco.feedback.dataset import read_dataset
    from smartreco.feedback.stream_log import is_redis_url

    shared = is_redis_url(logs)
    if not shared and not Path(logs).is_dir():
        raise DataError(f"--logs {logs}: not a directory (nor a redis:// URL)")
    path = experiment_path if shared else _find_experiment(Path(logs), experiment_path)
    experiment = Experiment.load(path) if path is not None else None
    analysis = analyse(read_dataset(logs), experiment)
    paths = write_report(analysis, out)
    click.echo(analysis.summary["recommendation"])
    click.echo(missing_impressions_line(analysis.summary))
    for kind, p in paths.items():
        click.echo(f"{kind}: {p}")


def _baseline(name: str):
    try:
        from smartreco.models import baselines
    except ImportError:
        raise DataError("smartreco.models.baselines is not available in this install") from None
    cls_name = BASELINES.get(name.lower())
    cls = getattr(baselines, cls_name, None) if cls_name else None
    if cls is None:
        raise DataError(
            f"--champion/--challenger {name!r}: unknown model (choose from {', '.join(BASELINES)})"
        )
    model = cls()
    model.name = name.lower()
    return model


@ab.command()
@click.option(
    "--source", default="movielens", show_default=True, help="movielens, synthetic or a folder PATH"
)
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="output directory")
@click.option("--champion", default="ease", show_default=True)
@click.option("--challenger", default="most_popular", show_default=True)
@click.option("--days", default=14, show_default=True, type=click.IntRange(1, 365))
@click.option("--visits-per-day", default=400, show_default=True, type=click.IntRange(1, 1_000_000))
@click.option("--routing", type=click.Choice(["fixed", "thompson"]), default="fixed", show_default=True)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--report/--no-report", "with_report", default=True, show_default=True)
def simulate(
    source: str,
    out: Path,
    champion: str,
    challenger: str,
    days: int,
    visits_per_day: int,
    routing: str,
    seed: int,
    with_report: bool,
) -> None:
    """Replay held-out interactions as users answering two models' recommendations (writes the log)."""
    from smartreco.data.sources import load_source
    from smartreco.experiments.simulate import SimulationConfig, simulate_ab

    data = load_source(source)
    cfg = SimulationConfig(days=days, visits_per_day=visits_per_day, routing=routing, seed=seed)
    result = simulate_ab(data, _baseline(champion), _baseline(challenger), out, cfg)
    click.echo(json.dumps(result["arms"], indent=2))
    if with_report:
        ctx = click.get_current_context()
        ctx.invoke(
            report, logs=Path(result["log_dir"]), out=out / "report", experiment_path=out / "experiment.json"
        )
