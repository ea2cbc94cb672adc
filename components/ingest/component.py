"""KFP component: load a source (movielens | synthetic | folder), plus the served traffic's interactions
from the event log when ``events`` names it, into a folder of parquet tables."""

from kfp.dsl import Dataset, Metrics, Output

from components.common import component


@component()
def ingest(
    source: str,
    dataset: Output[Dataset],
    metrics: Output[Metrics],
    sample_users: int = 0,
    seed: int = 7,
    events: str = "",
    live_items: str = "",
) -> None:
    """Tables land in ``dataset.path``; ``sample_users`` > 0 keeps that many random users (fast runs);
    ``events``: the graph's event log (segment folder or ``redis://`` stream) whose clicks / likes /
    purchases join the interactions (metric ``rows_served_interactions``), so retraining learns from traffic;
    ``live_items``: the graph state (SQLite file or ``redis://``) whose items added since the last retrain
    (``smartreco items add``) join the items (metric ``rows_new_items``).

    A user folder is copied as read (not canonicalised), so the validate step sees its problems."""
    from pathlib import Path

    from smartreco.validation.ingest import ingest_tables

    new_items = None
    if live_items:
        from smartreco.serving.live_items import live_rows, open_live_store

        new_items = live_rows(open_live_store(live_items))
    counts = ingest_tables(
        source, Path(dataset.path), sample_users=sample_users, seed=seed, events=events, new_items=new_items
    )
    for name, n in counts.items():
        metrics.log_metric(f"rows_{name}", n)
