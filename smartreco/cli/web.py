"""`smartreco web`: the storefront, experiments and model pages (smartreco.web) on a local port."""

from __future__ import annotations

from pathlib import Path

import click

from smartreco.serving.client import default_url


@click.command("web")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option("--host", default="127.0.0.1", show_default=True, help="0.0.0.0 in a container")
@click.option("--graph", "graph_url", default=default_url, show_default="$SMARTRECO_GRAPH_URL or http://127.0.0.1:8000",
              help="the graph's Seldon REST URL")
@click.option("--event-log", type=click.Path(path_type=Path), default=None,
              help="the graph's event (impression + feedback) log folder [default: $SMARTRECO_RUNS/feedback]")
@click.option("--experiment", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="experiment.json for the analysis [default: next to the event log]")
@click.option("--drift", "drift_search", type=click.Path(path_type=Path), default=None,
              help="drift.json or a folder to find the newest one in [default: $SMARTRECO_RUNS]")
@click.option("--n", default=10, show_default=True, type=click.IntRange(1, 50), help="list length")
def web(port: int, host: str, graph_url: str, event_log: Path | None, experiment: Path | None,
        drift_search: Path | None, n: int) -> None:
    """Serve the storefront (/), the A/B dashboard (/experiments) and the model page (/model)."""
    import uvicorn

    from smartreco.paths import runs_dir
    from smartreco.web.app import WebConfig, create_app

    cfg = WebConfig(graph_url=graph_url, event_log=event_log or runs_dir() / "feedback",
                    drift_search=drift_search or runs_dir(), experiment=experiment, n=n)
    click.echo(f"storefront on http://{host}:{port}/ (graph {graph_url}, event log {cfg.event_log}); Ctrl-C stops")
    uvicorn.run(create_app(cfg), host=host, port=port, log_level="warning")
