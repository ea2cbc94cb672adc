"""Deliberately shifted copies of a data set: what the drift check must catch (tests, demos).

``split_unshifted`` assigns events to two halves at random (same distribution on both sides: no drift
expected; a split by *users* is not iid at the event level, since a user's events are correlated, so
event-level tests would flag heavy users as drift);
``shift_data`` moves what production traffic typically moves: ratings get harsher, activity moves
to other hours and to mobile, and a share of events goes to items that were niche.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from smartreco.data import columns as C
from smartreco.data.canonical import CanonicalData


def split_unshifted(data: CanonicalData, fraction: float = 0.5, seed: int = 7) -> tuple[CanonicalData, CanonicalData]:
    """Random event split: (reference, current) from the same distribution."""
    mask = np.random.default_rng(seed).random(len(data.interactions)) < fraction
    return _with(data, data.interactions[~mask]), _with(data, data.interactions[mask])


def _with(data: CanonicalData, interactions: pd.DataFrame) -> CanonicalData:
    users = data.users[data.users[C.USER_ID].astype(str).isin(interactions[C.USER_ID].astype(str))]
    return CanonicalData(interactions.reset_index(drop=True), data.items, users.reset_index(drop=True),
                         source=data.source, meta=dict(data.meta))


def shift_data(data: CanonicalData, strength: float = 0.5, seed: int = 7) -> CanonicalData:
    """A copy where a ``strength`` share of events is perturbed (ratings, hours, channel, items)."""
    rng = np.random.default_rng(seed)
    inter = data.interactions.copy()
    hit = rng.random(len(inter)) < strength
    if C.RATING in inter:
        inter.loc[hit, C.RATING] = (inter.loc[hit, C.RATING] - 1.5).clip(lower=0.5)
    inter.loc[hit, C.TIMESTAMP] = inter.loc[hit, C.TIMESTAMP] + pd.Timedelta(hours=9)
    if C.CHANNEL in inter:
        inter.loc[hit, C.CHANNEL] = "mobile"
    if C.DEVICE_TYPE in inter:
        inter.loc[hit, C.DEVICE_TYPE] = "android"
    counts = inter[C.ITEM_ID].value_counts()
    niche = counts.index[counts.to_numpy() <= max(1, int(counts.quantile(0.5)))].to_numpy()
    if len(niche):
        inter.loc[hit, C.ITEM_ID] = rng.choice(niche, size=int(hit.sum()))
    return CanonicalData(inter, data.items, data.users, source=f"{data.source}+shifted", meta=dict(data.meta))
