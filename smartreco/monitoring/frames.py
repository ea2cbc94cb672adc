"""The tables drift is measured on, derived from canonical data (pandas only, vectorised).

Three views, each a flat frame of numerical + categorical columns Evidently can test:

* ``interactions``: one row per event (rating, hour, weekday, type, channel, device, item category,
  item popularity in the *reference* window, item age);
* ``features``: one row per user (activity, mean rating, positive share, category breadth, hour,
  active span): the distribution of the user features the models read;
* ``predictions``: one row per served recommendation (score, rank, category, variant), from a
  prediction log or a batch output (``smartreco.batch``).

Item popularity is looked up in the reference counts for both sides (leave-one-out on the reference
side), so "current traffic moved to
items that were niche at training time" shows up as drift instead of being normalised away.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from smartreco.data import columns as C
from smartreco.data.canonical import positive_mask
from smartreco.errors import DataError

HOUR, WEEKDAY, ITEM_POPULARITY, ITEM_AGE_DAYS = "hour", "weekday", "item_popularity", "item_age_days"
N_EVENTS, MEAN_RATING, POSITIVE_SHARE, N_CATEGORIES, MEAN_HOUR, ACTIVE_DAYS = (
    "log_events", "mean_rating", "positive_share", "n_categories", "mean_hour", "active_days",
)


@dataclass(frozen=True)
class Frame:
    """A table plus which of its columns are numerical / categorical."""

    data: pd.DataFrame
    numerical: list[str]
    categorical: list[str]

    @property
    def columns(self) -> list[str]:
        return [*self.numerical, *self.categorical]


def _require(df: pd.DataFrame, cols: tuple[str, ...], table: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataError(f"{table}: missing column(s) {', '.join(missing)}")


def _utc(ts: pd.Series) -> pd.Series:
    out = pd.to_datetime(ts, utc=True, errors="coerce")
    if out.isna().all() and len(out):
        raise DataError(f"interactions: column {C.TIMESTAMP} has no parseable timestamps")
    return out


def item_counts(interactions: pd.DataFrame) -> pd.Series:
    """Events per item (the reference popularity both sides are looked up in)."""
    return interactions[C.ITEM_ID].astype(str).value_counts()


def interaction_frame(
    interactions: pd.DataFrame,
    items: pd.DataFrame | None = None,
    reference_counts: pd.Series | None = None,
    leave_one_out: bool = False,
) -> Frame:
    """One row per interaction; columns absent from the input are simply not tested.

    ``leave_one_out`` (for the reference side itself): an event's popularity excludes that event, so
    a reference event and a current event from the same distribution see the same popularity scale
    (otherwise reference events never have popularity 0 and current ones do)."""
    _require(interactions, C.REQUIRED_INTERACTION_COLUMNS, "interactions")
    ts = _utc(interactions[C.TIMESTAMP])
    out = pd.DataFrame(index=interactions.index)
    num: list[str] = []
    cat: list[str] = []
    if C.RATING in interactions:
        out[C.RATING] = pd.to_numeric(interactions[C.RATING], errors="coerce")
        num.append(C.RATING)
    out[HOUR] = ts.dt.hour.astype("float64")
    out[WEEKDAY] = ts.dt.dayofweek.astype("Int64").astype(str)
    num.append(HOUR)
    cat.append(WEEKDAY)
    for col in (C.INTERACTION_TYPE, C.CHANNEL, C.DEVICE_TYPE):
        if col in interactions:
            out[col] = interactions[col].astype(str)
            cat.append(col)
    item_ids = interactions[C.ITEM_ID].astype(str)
    counts = reference_counts if reference_counts is not None else item_counts(interactions)
    pop = item_ids.map(counts).fillna(0.0).to_numpy(dtype=np.float64)
    out[ITEM_POPULARITY] = np.log1p(np.maximum(pop - 1.0, 0.0) if leave_one_out else pop)
    num.append(ITEM_POPULARITY)
    if items is not None and len(items):
        _require(items, (C.ITEM_ID, C.CATEGORY), "items")
        meta = items.drop_duplicates(C.ITEM_ID).set_index(items.drop_duplicates(C.ITEM_ID)[C.ITEM_ID].astype(str))
        out[C.CATEGORY] = item_ids.map(meta[C.CATEGORY].astype(str)).fillna("unknown")
        cat.append(C.CATEGORY)
        if C.CREATED_DATE in meta:
            created = pd.to_datetime(meta[C.CREATED_DATE], utc=True, errors="coerce")
            age = (ts - item_ids.map(created)).dt.total_seconds() / 86400.0
            if age.notna().any():
                out[ITEM_AGE_DAYS] = age.astype("float64")
                num.append(ITEM_AGE_DAYS)
    return Frame(out.reset_index(drop=True), num, cat)


def user_feature_frame(interactions: pd.DataFrame, items: pd.DataFrame | None = None) -> Frame:
    """One row per user: the aggregate features the models see."""
    _require(interactions, C.REQUIRED_INTERACTION_COLUMNS, "interactions")
    ts = _utc(interactions[C.TIMESTAMP])
    df = pd.DataFrame({
        C.USER_ID: interactions[C.USER_ID].astype(str).to_numpy(),
        "pos": positive_mask(interactions).to_numpy(dtype=np.float64),
        "hour": ts.dt.hour.to_numpy(dtype=np.float64),
        "t": ts.astype("int64").to_numpy() / 86400e9,
    })
    num = [N_EVENTS, POSITIVE_SHARE, MEAN_HOUR, ACTIVE_DAYS]
    agg = {"pos": "mean", "hour": "mean", "t": ["min", "max", "size"]}
    if C.RATING in interactions:
        df["rating"] = pd.to_numeric(interactions[C.RATING], errors="coerce").to_numpy()
        agg["rating"] = "mean"
    g = df.groupby(C.USER_ID, sort=False).agg(agg)
    out = pd.DataFrame({
        N_EVENTS: np.log1p(g[("t", "size")].to_numpy(dtype=np.float64)),
        POSITIVE_SHARE: g[("pos", "mean")].to_numpy(),
        MEAN_HOUR: g[("hour", "mean")].to_numpy(),
        ACTIVE_DAYS: (g[("t", "max")] - g[("t", "min")]).to_numpy(),
    })
    if "rating" in agg:
        out[MEAN_RATING] = g[("rating", "mean")].to_numpy()
        num.append(MEAN_RATING)
    if items is not None and len(items):
        cats = interactions[C.ITEM_ID].astype(str).map(
            items.drop_duplicates(C.ITEM_ID).set_index(items.drop_duplicates(C.ITEM_ID)[C.ITEM_ID].astype(str))[
                C.CATEGORY
            ]
        )
        breadth = pd.DataFrame({C.USER_ID: df[C.USER_ID], "c": cats.to_numpy()}).groupby(C.USER_ID, sort=False)["c"]
        out[N_CATEGORIES] = breadth.nunique().reindex(g.index).to_numpy(dtype=np.float64)
        num.append(N_CATEGORIES)
    return Frame(out, num, [])


def prediction_frame(predictions: pd.DataFrame) -> Frame:
    """One row per served recommendation: score and rank (numerical), category and variant (categorical)."""
    _require(predictions, (C.SCORE,), "predictions")
    out = pd.DataFrame({C.SCORE: pd.to_numeric(predictions[C.SCORE], errors="coerce")})
    num, cat = [C.SCORE], []
    if C.RANK in predictions:
        out[C.RANK] = pd.to_numeric(predictions[C.RANK], errors="coerce")
        num.append(C.RANK)
    for col in (C.CATEGORY, "variant"):
        if col in predictions:
            out[col] = predictions[col].astype(str)
            cat.append(col)
    return Frame(out.reset_index(drop=True), num, cat)
