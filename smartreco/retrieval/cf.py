"""CF candidates from exported factors + a retrieval index: what a CF node serves at 10M items.

:class:`CFRetriever` has the part of :class:`smartreco.serving.runtime.BundleRuntime`'s surface that
``inference_graph.cf_model.CFModel`` calls (``cf_candidates``, ``popular``, ``has_user``, ``version``),
backed by memory-mapped factor files and an :class:`~smartreco.retrieval.index.Index` (exact or ANN,
picked by catalogue size), so the CF node can serve a catalogue whose full bundle would not fit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from smartreco.models import serving_math as S
from smartreco.retrieval.index import Index, build_index, load_index


class CFRetriever:
    """Known user -> learned factors; unknown user with a history -> sum of its items' factors."""

    def __init__(self, user_ids: pd.Index, item_ids: pd.Index, user_factors: np.ndarray, index: Index,
                 popularity: np.ndarray | None = None, version: str = "cf-retriever") -> None:
        self.user_index, self.item_index = user_ids, item_ids
        self.item_ids = item_ids.to_numpy()
        self.user_factors = user_factors
        self.index = index
        self.version = version
        pop = np.zeros(len(item_ids), np.float32) if popularity is None else np.asarray(popularity, np.float32)
        self._popular = np.argsort(-pop, kind="stable")[:10_000]  # enough for any k + exclusions
        self._pop = pop

    @classmethod
    def load(cls, cf_dir: Path | str, index_dir: Path | str | None = None, popularity: np.ndarray | None = None,
             kind: str = "auto") -> CFRetriever:
        """Factors from a cf.py / cf_streaming export (memory-mapped); the index from ``index_dir`` when
        given (memory-mapped), else built here with ``kind``."""
        d = Path(cf_dir)
        users = np.load(d / S.USER_FACTORS, mmap_mode="r")
        if index_dir is not None:
            index = load_index(index_dir, mmap=True)
        else:
            index = build_index(np.load(d / S.ITEM_FACTORS), np.load(d / S.ITEM_BIAS), kind=kind)
        return cls(S.read_ids(d / S.USER_IDS), S.read_ids(d / S.ITEM_IDS), users, index, popularity)

    def has_user(self, user_id: str | None) -> bool:
        return user_id is not None and bool(self.user_index.get_indexer([str(user_id)])[0] >= 0)

    def user_vector(self, user_id: str | None, history_rows: np.ndarray) -> np.ndarray | None:
        if user_id is not None:
            r = self.user_index.get_indexer([str(user_id)])[0]
            if r >= 0:
                vec = np.asarray(self.user_factors[r], dtype=np.float32)
                if np.any(vec):
                    return vec
        if len(history_rows) == 0:
            return None
        return np.asarray(self.index.vectors[np.unique(history_rows)], dtype=np.float32).sum(axis=0)

    def cf_candidates(self, user_id: str | None, history: list[str], k: int,
                      exclude: set[str] | None = None) -> dict[str, float]:
        hist = S.history_rows(history, self.item_index)
        u = self.user_vector(user_id, hist)
        if u is None or k <= 0:
            return {}
        ex = np.unique(np.concatenate([hist, S.history_rows(list(exclude or ()), self.item_index)]))
        idx, sc = self.index.search(u[None, :], int(k), exclude=[ex])
        keep = idx[0] >= 0
        return {str(self.item_ids[i]): float(s) for i, s in zip(idx[0][keep], sc[0][keep], strict=True)}

    def popular(self, k: int, exclude: set[str] | None = None, category: str | None = None) -> dict[str, float]:
        ex = set(S.history_rows(list(exclude or ()), self.item_index).tolist())
        rows = [r for r in self._popular if r not in ex][: int(k)]
        return {str(self.item_ids[r]): float(self._pop[r]) for r in rows}
