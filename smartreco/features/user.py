"""User features as a point-in-time time series (one row per user and event time), vectorised.

RFM (recency via ``last_interaction_ts``, frequency, monetary spend and the rating analogue
``positive_count``), interaction counts by type, average rating, category diversity (Shannon entropy,
updated incrementally so it needs no per-row loop), session stats and the preferred channel/device.
Recency itself depends on *when* it is read, so it is derived at read time by :func:`add_recency`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from smartreco.data import columns as C
from smartreco.data.canonical import positive_mask
from smartreco.features._frame import EVENT_TIMESTAMP, entity_codes, epoch_seconds, last_per_time

TYPE_COUNT_COLUMNS: tuple[str, ...] = tuple(f"n_{t}" for t in C.INTERACTION_TYPES)
USER_FEATURES: tuple[str, ...] = (
    "interaction_count",
    *TYPE_COUNT_COLUMNS,
    "rating_count",
    "avg_rating",
    "positive_count",
    "monetary",
    "category_entropy",
    "n_categories",
    "n_sessions",
    "avg_session_events",
    "avg_session_seconds",
    "preferred_channel",
    "preferred_device",
    "first_interaction_ts",
    "last_interaction_ts",
    "tenure_days",
)
MAX_DEVICES = 16


def _xlogx(x: np.ndarray) -> np.ndarray:
    x = x.astype("float64")
    return np.where(x > 0, x * np.log(np.where(x > 0, x, 1.0)), 0.0)


def _preferred(values: pd.Series, codes: np.ndarray, choices: list[str]) -> np.ndarray:
    """Running mode of a categorical per user: cumulative one-hot counts, then argmax."""
    known = values.where(values.isin(choices), "other")
    labels = [*choices, "other"]
    onehot = pd.get_dummies(pd.Categorical(known, categories=labels)).to_numpy(dtype="int32")
    running = pd.DataFrame(onehot).groupby(codes).cumsum().to_numpy()
    return np.asarray(labels, dtype=object)[running.argmax(axis=1)]


def user_feature_history(interactions: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """Cumulative user stats after each (user, timestamp); stamped +1 µs (see ``_frame``)."""
    cols = [C.USER_ID, C.ITEM_ID, C.INTERACTION_TYPE, C.TIMESTAMP, C.SESSION_ID, C.CHANNEL, C.DEVICE_TYPE, C.RATING]
    df = interactions[[c for c in cols if c in interactions]].copy()
    df = df.merge(items[[C.ITEM_ID, C.CATEGORY, C.PRICE]], on=C.ITEM_ID, how="left")
    df = df.sort_values([C.USER_ID, C.TIMESTAMP], kind="stable").reset_index(drop=True)
    codes = entity_codes(df[C.USER_ID])
    g = pd.Series(codes)
    out = pd.DataFrame({C.USER_ID: df[C.USER_ID].to_numpy(), C.TIMESTAMP: df[C.TIMESTAMP].to_numpy()})
    n = g.groupby(codes).cumcount().to_numpy() + 1
    out["interaction_count"] = n

    onehot = pd.get_dummies(pd.Categorical(df[C.INTERACTION_TYPE], categories=list(C.INTERACTION_TYPES)))
    onehot.columns = list(TYPE_COUNT_COLUMNS)
    running = onehot.astype("int32").groupby(codes).cumsum()
    for col in TYPE_COUNT_COLUMNS:
        out[col] = running[col].to_numpy()

    rating = df[C.RATING] if C.RATING in df else pd.Series(np.nan, index=df.index)
    aux = (
        pd.DataFrame(
            {
                "rated": rating.notna().astype("int32"),
                "rating_sum": rating.fillna(0.0),
                "positive": positive_mask(df).astype("int32"),
                "spend": df[C.PRICE].where(df[C.INTERACTION_TYPE] == "purchase").fillna(0.0),
            }
        )
        .groupby(codes)
        .cumsum()
    )
    out["rating_count"] = aux["rated"].to_numpy()
    out["avg_rating"] = np.where(aux["rated"] > 0, aux["rating_sum"] / aux["rated"].clip(lower=1), np.nan)
    out["positive_count"] = aux["positive"].to_numpy()
    out["monetary"] = aux["spend"].to_numpy()

    # Shannon entropy of the category distribution, H = ln N - (1/N) sum c ln c, updated per event:
    # an event in a category seen c times adds (c+1)ln(c+1) - c ln c to the sum.
    category = df[C.CATEGORY].fillna("unknown").to_numpy()
    seen = pd.Series(category).groupby([codes, category]).cumcount().to_numpy()
    delta = _xlogx(seen + 1) - _xlogx(seen)
    parts = pd.DataFrame({"s": delta, "new_cat": (seen == 0).astype("int32")}).groupby(codes).cumsum()
    out["category_entropy"] = np.clip(np.log(n) - parts["s"].to_numpy() / n, 0.0, None)
    out["n_categories"] = parts["new_cat"].to_numpy()

    session = df[C.SESSION_ID].astype(str).to_numpy() if C.SESSION_ID in df else codes.astype(str)
    in_session = pd.Series(session).groupby([codes, session])
    first_in_session = in_session.cumcount().to_numpy() == 0
    secs = epoch_seconds(df[C.TIMESTAMP]).to_numpy()
    gap = np.where(first_in_session, 0, secs - np.r_[secs[:1], secs[:-1]])
    sess = pd.DataFrame({"new": first_in_session.astype("int32"), "dur": gap.astype("float64")}).groupby(codes).cumsum()
    out["n_sessions"] = sess["new"].to_numpy()
    out["avg_session_events"] = n / out["n_sessions"].to_numpy()
    out["avg_session_seconds"] = sess["dur"].to_numpy() / out["n_sessions"].to_numpy()

    channel = df[C.CHANNEL].fillna("web").astype(str) if C.CHANNEL in df else pd.Series("web", index=df.index)
    out["preferred_channel"] = _preferred(channel, codes, list(C.CHANNELS))
    device = (
        df[C.DEVICE_TYPE].fillna("unknown").astype(str) if C.DEVICE_TYPE in df else pd.Series("unknown", index=df.index)
    )
    # ties go to the alphabetically first label, so the answer does not depend on data order
    out["preferred_device"] = _preferred(device, codes, sorted(device.value_counts().index[:MAX_DEVICES]))

    first = pd.Series(secs).groupby(codes).transform("first").to_numpy()
    out["first_interaction_ts"] = first
    out["last_interaction_ts"] = secs
    out["tenure_days"] = (secs - first) / 86400.0
    out = last_per_time(out, C.USER_ID)
    return out[[C.USER_ID, EVENT_TIMESTAMP, *USER_FEATURES]].reset_index(drop=True)


def add_recency(features: pd.DataFrame, as_of: pd.Series | pd.Timestamp) -> pd.DataFrame:
    """Days since the entity's first/last interaction as seen at ``as_of`` (the R of RFM)."""
    out = features.copy()
    now = epoch_seconds(as_of) if isinstance(as_of, pd.Series) else int(pd.Timestamp(as_of).timestamp())
    now = np.asarray(now, dtype="float64")
    out["recency_days"] = (now - out["last_interaction_ts"].astype("float64")) / 86400.0
    out["days_since_first"] = (now - out["first_interaction_ts"].astype("float64")) / 86400.0
    return out
