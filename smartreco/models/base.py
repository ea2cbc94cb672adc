"""The contract every recommender (model or baseline) follows, so one evaluation loop serves all.

A model is fitted on canonical train interactions and scores *all* catalogue items for a batch of
users. Scores are dense ``float32`` arrays of shape ``(len(users), n_items)`` in the column order
of :attr:`InteractionMatrix.item_ids`; the evaluator masks items seen in train and takes top-k.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from smartreco.data import columns as C
from smartreco.data.canonical import positive_mask


@dataclass
class InteractionMatrix:
    """Users x items matrix of implicit weights plus the id <-> index maps that give it meaning."""

    user_ids: np.ndarray  # object array of str, row order
    item_ids: np.ndarray  # object array of str, column order (the whole catalogue)
    matrix: sp.csr_matrix  # float32 weights (positives-only or all interactions, see build())

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def user_index(self) -> pd.Index:
        return pd.Index(self.user_ids)

    def item_index(self) -> pd.Index:
        return pd.Index(self.item_ids)

    @classmethod
    def build(
        cls,
        interactions: pd.DataFrame,
        item_ids: np.ndarray | pd.Index,
        user_ids: np.ndarray | pd.Index | None = None,
        *,
        positives_only: bool = False,
        binary: bool = True,
    ) -> InteractionMatrix:
        """Rows = ``user_ids`` (default: users in ``interactions``), columns = ``item_ids`` (catalogue).

        Interactions naming items outside the catalogue are dropped. ``binary`` keeps 1.0 for any
        (user, item) pair; otherwise weights come from :data:`columns.INTERACTION_WEIGHTS` and are summed.
        """
        df = interactions[positive_mask(interactions)] if positives_only else interactions
        items = pd.Index(np.asarray(item_ids, dtype=object))
        users = pd.Index(np.asarray(user_ids if user_ids is not None else df[C.USER_ID].unique(), dtype=object))
        rows = users.get_indexer(df[C.USER_ID])
        cols = items.get_indexer(df[C.ITEM_ID])
        keep = (rows >= 0) & (cols >= 0)
        if binary:
            values = np.ones(int(keep.sum()), dtype=np.float32)
        else:
            values = df[C.INTERACTION_TYPE].map(C.INTERACTION_WEIGHTS).to_numpy(dtype=np.float32)[keep]
        mat = sp.csr_matrix((values, (rows[keep], cols[keep])), shape=(len(users), len(items)), dtype=np.float32)
        if binary:
            mat.data[:] = 1.0  # duplicates were summed by the constructor
        mat.sum_duplicates()
        return cls(user_ids=users.to_numpy(), item_ids=items.to_numpy(), matrix=mat)


@dataclass
class TrainData:
    """What ``fit`` gets: canonical train interactions, the item catalogue, and the positives matrix."""

    interactions: pd.DataFrame
    items: pd.DataFrame
    matrix: InteractionMatrix  # positives (ARCHITECTURE §3) over the full catalogue, binary

    @classmethod
    def from_interactions(cls, interactions: pd.DataFrame, items: pd.DataFrame) -> TrainData:
        users = np.asarray(sorted(interactions[C.USER_ID].unique()), dtype=object)
        matrix = InteractionMatrix.build(interactions, items[C.ITEM_ID].to_numpy(), users, positives_only=True)
        return cls(interactions=interactions, items=items, matrix=matrix)


class Recommender(ABC):
    """Fit on train, score every catalogue item for a batch of known users."""

    name: str = "recommender"

    @abstractmethod
    def fit(self, data: TrainData) -> Recommender:
        """Learn from ``data``; returns self."""

    @abstractmethod
    def score_users(self, user_rows: np.ndarray) -> np.ndarray:
        """Scores ``(len(user_rows), n_items)`` for rows of ``data.matrix`` (higher = better)."""

    def params(self) -> dict:
        """Hyper-parameters to log (MLflow) and report."""
        return {}
