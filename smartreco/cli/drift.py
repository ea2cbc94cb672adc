"""`smartreco drift report`: Evidently drift (KS / chi-square p-values) of current data vs a reference."""

from __future__ import annotations

import click


@click.group()
def drift() -> None:
    """Data and prediction drift against the training reference."""


@drift.command("report")
@click.option("--reference", required=True, help="reference data: movielens, synthetic or a canonical folder")
@click.option("--current", required=True, help="current data: movielens, synthetic, a canonical folder, or the "
              "graph's event log (segment folder or redis:// stream: the served traffic)")
@click.option("--out", "out_dir", required=True, help="folder for drift.json, drift.md and one HTML per view")
@click.option("--threshold", default=0.3, show_default=True, type=float, help="drifted-column share that is drift")
@click.option("--alpha", default=0.05, show_default=True, type=float, help="p-value below which a column drifted")
@click.option("--reference-predictions", default=None, help="served-prediction log (parquet/CSV with score)")
@click.option("--current-predictions", default=None, help="served-prediction log (parquet/CSV with score, or the "
              "event log: its impressions)")
@click.option("--pushgateway", default=None, help="Prometheus Pushgateway for smartreco_drift_share/_detected "
              "[default: SMARTRECO_PUSHGATEWAY_URL; unset: no push]")
@click.option("--fail-on-drift", is_flag=True, help="exit 3 when drift is detected (for schedulers)")
def report(reference: str, current: str, out_dir: str, threshold: float, alpha: float,
           reference_predictions: str | None, current_predictions: str | None, pushgateway: str | None,
           fail_on_drift: bool) -> None:
    """Write the drift report and print the verdict."""
    import pandas as pd

    from smartreco import settings
    from smartreco.data.sources import load_source
    from smartreco.errors import DataError
    from smartreco.monitoring.drift import check_drift
    from smartreco.monitoring.push import push_drift
    from smartreco.monitoring.served import is_event_log, served_data, served_predictions

    def read(path: str | None):
        if not path:
            return None
        if is_event_log(path):
            return served_predictions(path)
        try:
            return pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path)
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: cannot read ({exc})") from None

    ref = load_source(reference)
    cur = served_data(current, ref) if is_event_log(current) else load_source(current)
    res = check_drift(ref, cur, out_dir, threshold=threshold, alpha=alpha,
                      reference_predictions=read(reference_predictions),
                      current_predictions=read(current_predictions))
    verdict = "DRIFT" if res.drift_detected else "no drift"
    click.echo(f"{verdict}: {res.share:.0%} of {res.n_columns} columns drifted (threshold {threshold:.0%})")
    for view in res.views:
        cols = ", ".join(f"{c.column} p={c.p_value:.2g}" for c in view.columns if c.drifted) or "none"
        click.echo(f"  {view.name}: {view.n_drifted}/{len(view.columns)} drifted ({cols})")
    click.echo(f"report: {out_dir}/drift.json, {out_dir}/drift.md, {out_dir}/drift_*.html")
    gateway = pushgateway or settings.PUSHGATEWAY_URL.get()
    if gateway:
        push_drift(res, gateway)
        click.echo(f"pushed smartreco_drift_share / smartreco_drift_detected to {gateway}")
    if fail_on_drift and res.drift_detected:
        raise click.exceptions.Exit(3)
