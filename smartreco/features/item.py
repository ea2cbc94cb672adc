"""Item features as a point-in-time time series (one row per item and event time), vectorised.

Popularity with exponential time decay (evaluated at the item's latest event; ``decay_popularity_at``
extends it to any later time), unique users, rating count and mean, popularity relative to the
item's category, first/last interaction times, and a quality score (Bayesian-shrunk positive rate).
Category and global quantities are taken as of the item's own event time, so no row uses a later
event.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from smartreco.data import columns as C
from smartreco.data.canonical import positive_mask
from smartreco.errors import DataError
from smartreco.features._frame import EVENT_TIMESTAMP, entity_codes, epoch_seconds, last_per_time

ITEM_FEATURES: tuple[str, ...] = (
    "interaction_count",
    "unique_users",
    "rating_count",
    "avg_rating",
    "popularity_decayed",
    "category_relative_popularity",
    "quality_score",
    "first_interaction_ts",
    "last_interaction_ts",
    "days_active",
)
#: Prior strength (pseudo-interactions) of the Bayesian quality score.
QUALITY_PRIOR = 10.0


def _category_context(df: pd.DataFrame) -> pd.DataFrame:
    """Per event, in time order: category event count, distinct items in it, global positive rate."""
    order = np.argsort(df[C.TIMESTAMP].to_numpy(), kind="stable")
    t = df.iloc[order]
    cat = t[C.CATEGORY].to_numpy()
    cat_count = t.groupby(C.CATEGORY, sort=False).cumcount().to_numpy() + 1
    first_of_item = (t.groupby([C.CATEGORY, C.ITEM_ID], sort=False).cumcount() == 0).astype("int32")
    cat_items = first_of_item.groupby(cat).cumsum().to_numpy()
    pos = positive_mask(t).to_numpy().astype("float64")
    global_rate = np.cumsum(pos) / np.arange(1, len(pos) + 1)
    ctx = pd.DataFrame({"cat_count": cat_count, "cat_items": cat_items, "global_pos_rate": global_rate}, index=t.index)
    return ctx.reindex(df.index)


def item_feature_history(interactions: pd.DataFrame, items: pd.DataFrame, half_life_days: float = 30.0) -> pd.DataFrame:
    """Cumulative item stats after each (item, timestamp); stamped +1 µs (see ``_frame``)."""
    cols = [C.USER_ID, C.ITEM_ID, C.INTERACTION_TYPE, C.TIMESTAMP, C.RATING]
    df = interactions[[c for c in cols if c in interactions]].copy()
    df = df.merge(items[[C.ITEM_ID, C.CATEGORY]], on=C.ITEM_ID, how="left")
    df[C.CATEGORY] = df[C.CATEGORY].fillna("unknown")
    df = df.sort_values([C.ITEM_ID, C.TIMESTAMP], kind="stable").reset_index(drop=True)
    codes = entity_codes(df[C.ITEM_ID])
    out = pd.DataFrame({C.ITEM_ID: df[C.ITEM_ID].to_numpy(), C.TIMESTAMP: df[C.TIMESTAMP].to_numpy()})
    n = pd.Series(codes).groupby(codes).cumcount().to_numpy() + 1
    out["interaction_count"] = n

    rating = df[C.RATING] if C.RATING in df else pd.Series(np.nan, index=df.index)
    first_user = (df.groupby([C.ITEM_ID, C.USER_ID], sort=False).cumcount() == 0).astype("int32")
    aux = (
        pd.DataFrame(
            {
                "new_user": first_user,
                "rated": rating.notna().astype("int32"),
                "rating_sum": rating.fillna(0.0),
                "positive": positive_mask(df).astype("float64"),
            }
        )
        .groupby(codes)
        .cumsum()
    )
    out["unique_users"] = aux["new_user"].to_numpy()
    out["rating_count"] = aux["rated"].to_numpy()
    out["avg_rating"] = np.where(aux["rated"] > 0, aux["rating_sum"] / aux["rated"].clip(lower=1), np.nan)

    # decayed count at event k: sum_i exp(-(t_k - t_i)/tau) = exp(-x_k) * cumsum(exp(x_i)), x relative to
    # the item's first event so exp() stays finite for spans below ~700 tau.
    secs = epoch_seconds(df[C.TIMESTAMP]).to_numpy().astype("float64")
    first = pd.Series(secs).groupby(codes).transform("first").to_numpy()
    tau = half_life_days * 86400.0 / np.log(2.0)
    x = (secs - first) / tau
    if len(x) and x.max() > 700:
        raise DataError(
            f"half_life_days={half_life_days}: too short for a {x.max() * tau / 86400:.0f}-day span; "
            "use a longer half-life"
        )
    growth = pd.Series(np.exp(x)).groupby(codes).cumsum().to_numpy()
    out["popularity_decayed"] = growth * np.exp(-x)

    ctx = _category_context(df)
    cat_mean = ctx["cat_count"].to_numpy() / ctx["cat_items"].to_numpy()
    out["category_relative_popularity"] = n / cat_mean
    prior = ctx["global_pos_rate"].to_numpy()
    out["quality_score"] = (aux["positive"].to_numpy() + QUALITY_PRIOR * prior) / (n + QUALITY_PRIOR)
    out["first_interaction_ts"] = first.astype("int64")
    out["last_interaction_ts"] = secs.astype("int64")
    out["days_active"] = (secs - first) / 86400.0
    out = last_per_time(out, C.ITEM_ID)
    return out[[C.ITEM_ID, EVENT_TIMESTAMP, *ITEM_FEATURES]].reset_index(drop=True)


def decay_popularity_at(features: pd.DataFrame, as_of: pd.Timestamp, half_life_days: float = 30.0) -> pd.Series:
    """The decayed popularity carried forward from the item's last event to ``as_of``."""
    age = (pd.Timestamp(as_of).timestamp() - features["last_interaction_ts"].astype("float64")).clip(lower=0)
    return features["popularity_decayed"] * np.power(0.5, age / (half_life_days * 86400.0))
