"""The feedback log as tables: the next training run's interactions and the served-recommendation log.

``read_dataset`` gives one frame in canonical interaction columns plus log columns (event,
request_id, variant, model_version, reward, rank, score). Impressions are exploded to one row per
served item with ``event == "impression"`` and ``interaction_type == "view"`` (the item was shown);
training code that wants only what users did keeps ``event == "feedback"`` (:func:`read_interactions`).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from smartreco.data import columns as C
from smartreco.data.canonical import to_utc
from smartreco.feedback.log import iter_records
from smartreco.feedback.records import (
    EVENT,
    FEEDBACK,
    FEEDBACK_ID,
    IMPRESSION,
    MODEL_VERSION,
    REQUEST_ID,
    REWARD,
    VARIANT,
)

#: column order of :func:`read_dataset`
DATASET_COLUMNS: tuple[str, ...] = (
    C.USER_ID,
    C.ITEM_ID,
    C.INTERACTION_TYPE,
    C.TIMESTAMP,
    C.INTERACTION_ID,
    C.SESSION_ID,
    C.CHANNEL,
    C.DEVICE_TYPE,
    C.RATING,
    C.DURATION,
    EVENT,
    FEEDBACK_ID,
    REQUEST_ID,
    VARIANT,
    MODEL_VERSION,
    REWARD,
    C.RANK,
    C.SCORE,
)
_STR_COLS = (
    C.USER_ID,
    C.ITEM_ID,
    C.INTERACTION_TYPE,
    C.INTERACTION_ID,
    C.SESSION_ID,
    C.CHANNEL,
    C.DEVICE_TYPE,
    EVENT,
    FEEDBACK_ID,
    REQUEST_ID,
    VARIANT,
    MODEL_VERSION,
)
_FLOAT_COLS = (C.RATING, C.DURATION, REWARD, C.SCORE)


def _feedback_frame(recs: list[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame.from_records(recs) if recs else pd.DataFrame()
    if df.empty:
        return df
    df = df.rename(columns={"id": FEEDBACK_ID, "ts": C.TIMESTAMP})
    df[EVENT] = FEEDBACK
    df[C.INTERACTION_ID] = df[FEEDBACK_ID]
    return df


def _impression_frame(recs: list[dict[str, Any]]) -> pd.DataFrame:
    if not recs:
        return pd.DataFrame()
    df = pd.DataFrame.from_records(recs)
    lengths = df["items"].map(len).to_numpy()
    rows = np.repeat(np.arange(len(df)), lengths)
    out = (
        df.drop(columns=[c for c in ("items", "scores", "kind") if c in df]).iloc[rows].reset_index(drop=True)
    )
    out[C.ITEM_ID] = np.concatenate(df["items"].map(np.asarray).to_list()).astype(object)
    out[C.RANK] = np.concatenate([np.arange(1, n + 1) for n in lengths])
    if "scores" in df:
        scores = df["scores"].map(lambda s: s if isinstance(s, list) else [np.nan]).to_list()
        scores = [s if len(s) == n else [np.nan] * n for s, n in zip(scores, lengths, strict=True)]
        out[C.SCORE] = np.concatenate(scores).astype(float)
    out = out.rename(columns={"ts": C.TIMESTAMP})
    out[REQUEST_ID] = out[REQUEST_ID] if REQUEST_ID in out else out["id"]
    out[C.INTERACTION_ID] = out["id"].astype(str) + "#" + out[C.RANK].astype(str)
    out = out.drop(columns=["id"])
    out[EVENT] = IMPRESSION
    out[C.INTERACTION_TYPE] = "view"
    return out


def _timestamps(ts: pd.Series) -> pd.Series:
    """The log writes ISO-8601 (fast path); anything else goes through the canonical coercion."""
    if not len(ts):
        return pd.Series([], dtype="datetime64[ns, UTC]", index=ts.index)
    try:
        return pd.to_datetime(ts, utc=True, format="ISO8601").astype("datetime64[ns, UTC]")
    except (ValueError, TypeError):
        return to_utc(ts.astype(object), C.TIMESTAMP)


def iter_log(where: str | os.PathLike[str], archive_dir: str | os.PathLike[str] | None = None):
    """Every (deduplicated) record of an event log: a segment directory, or a ``redis://`` URL (the shared
    stream, after its parquet archive: ``archive_dir``, default ``SMARTRECO_EVENTS_ARCHIVE``)."""
    from smartreco.feedback.stream_log import is_redis_url, iter_stream_records

    if is_redis_url(str(where)):
        from smartreco import settings

        archive = archive_dir if archive_dir is not None else settings.EVENTS_ARCHIVE.get()
        return iter_stream_records(str(where), archive)
    return iter_records(where)


def read_dataset(directory: str | os.PathLike[str], *, include_impressions: bool = True) -> pd.DataFrame:
    """All (deduplicated) records of the log at ``directory`` (or ``redis://`` URL) as one frame, oldest first."""
    feedback: list[dict[str, Any]] = []
    impressions: list[dict[str, Any]] = []
    for rec in iter_log(directory):
        (feedback if rec["kind"] == FEEDBACK else impressions).append(rec)
    parts = [_feedback_frame(feedback)]
    if include_impressions:
        parts.append(_impression_frame(impressions))
    parts = [p for p in parts if not p.empty]
    df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    for col in DATASET_COLUMNS:
        if col not in df:
            df[col] = np.nan if col in _FLOAT_COLS or col == C.RANK else None
    df = df.loc[:, list(DATASET_COLUMNS)]
    for col in _STR_COLS:
        df[col] = df[col].astype(object).where(df[col].notna(), None)
    for col in _FLOAT_COLS:
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    df[C.RANK] = pd.to_numeric(df[C.RANK], errors="coerce").astype("Int64")
    df[C.TIMESTAMP] = _timestamps(df[C.TIMESTAMP])
    df[C.CHANNEL] = df[C.CHANNEL].fillna("web")
    return df.sort_values(C.TIMESTAMP, kind="stable").reset_index(drop=True)


def read_interactions(directory: str | os.PathLike[str]) -> pd.DataFrame:
    """Only what users did (feedback naming an item): the next training run's new interactions."""
    df = read_dataset(directory, include_impressions=False)
    return df[df[C.ITEM_ID].notna() & df[C.INTERACTION_TYPE].notna()].reset_index(drop=True)


def read_impressions(directory: str | os.PathLike[str]) -> pd.DataFrame:
    """One row per served item (request, rank, score, variant): the drift pipeline's prediction log."""
    df = read_dataset(directory)
    return df[df[EVENT] == IMPRESSION].reset_index(drop=True)
