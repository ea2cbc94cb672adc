"""The served traffic as the drift check's "current" side: the graph's event log (a segment folder or the
shared ``redis://`` stream) read as canonical interactions (what users did with served answers) and as a
prediction log (one row per served item: rank, score), so drift in what the graph serves and in how
users answer it is what triggers retraining."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from smartreco.data import columns as C
from smartreco.data.canonical import CanonicalData
from smartreco.errors import DataError
from smartreco.feedback.log import SEGMENT_RE


def is_event_log(where: str) -> bool:
    """A ``redis://`` stream URL, or a folder holding the segment log's ``segment-*.log`` files."""
    from smartreco.feedback.stream_log import is_redis_url

    if is_redis_url(where):
        return True
    path = Path(where)
    return path.is_dir() and any(SEGMENT_RE.match(p.name) for p in path.iterdir())


def served_data(where: str, reference: CanonicalData) -> CanonicalData:
    """The log's interactions (canonical columns) with the reference's item and user tables."""
    from smartreco.feedback.dataset import read_interactions

    inter = read_interactions(where)
    if inter.empty:
        raise DataError(f"drift: the event log {where} holds no interactions yet")
    cols = [c for c in reference.interactions.columns if c in inter.columns]
    return CanonicalData(inter.loc[:, cols].reset_index(drop=True), reference.items, reference.users,
                         source=f"event log {where}")  # fmt: skip


def served_predictions(where: str) -> pd.DataFrame:
    """One row per served item (request, rank, score, variant): the drift check's prediction log."""
    from smartreco.feedback.dataset import read_impressions

    frame = read_impressions(where)
    return frame[frame[C.SCORE].notna()].reset_index(drop=True)
