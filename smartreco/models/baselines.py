"""The peers every evaluation reports (ARCHITECTURE §5): MostPopular, ItemKNN, EASE, implicit ALS.

All learn from ``TrainData.matrix`` (binary positives over the whole catalogue). Hyper-parameters
left as ``None`` are tuned by :func:`smartreco.evaluation.tuning.tune` on the validation split inside
train, then the model is refitted on all of train with the winner; the trials stay in ``params()``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from smartreco import settings
from smartreco.models.base import Recommender, TrainData

#: score given to items a model knows nothing about (no train positive): below any real score
UNKNOWN_ITEM_SCORE = np.float32(-1e9)


def _tuned_params(tuning) -> dict:
    return {
        "tuned_on": "validation split inside train (NDCG@10)",
        "validation_ndcg@10": round(tuning.best_score, 5),
        "trials": [{**p, "ndcg@10": round(s, 5)} for p, s in tuning.trials],
    }


class MostPopular(Recommender):
    """Items ranked by how many train users liked them; the same list for everyone."""

    name = "mostpop"

    def fit(self, data: TrainData) -> MostPopular:
        self._pop = np.asarray(data.matrix.matrix.sum(axis=0), dtype=np.float32).ravel()
        return self

    def score_users(self, user_rows: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self._pop, (len(user_rows), self._pop.size))


def _top_k_per_column(mat: sp.coo_matrix, k: int) -> sp.csr_matrix:
    """Keep the ``k`` largest entries of every column (vectorised: one lexsort, no per-column loop)."""
    order = np.lexsort((-mat.data, mat.col))
    rows, cols, vals = mat.row[order], mat.col[order], mat.data[order]
    col_start = np.searchsorted(cols, np.arange(mat.shape[1]))
    rank = np.arange(len(cols)) - col_start[cols]
    keep = rank < k
    return sp.csr_matrix((vals[keep], (rows[keep], cols[keep])), shape=mat.shape, dtype=np.float32)


class ItemKNN(Recommender):
    """Item-based CF: cosine similarity between item columns (with shrinkage), top-k neighbours kept
    per item, user score = sum of similarities to the items the user liked. Everything stays sparse."""

    name = "itemknn"
    GRID = {"neighbours": (25, 50, 100, 200, 400), "shrink": (0.0, 20.0)}

    def __init__(self, neighbours: int | None = None, shrink: float | None = None) -> None:
        self.neighbours = neighbours
        self.shrink = shrink
        self._tuning: dict = {}

    def fit(self, data: TrainData) -> ItemKNN:
        if self.neighbours is None or self.shrink is None:
            from smartreco.evaluation.tuning import grid, tune

            result = tune(data, ItemKNN, grid(
                neighbours=[self.neighbours] if self.neighbours is not None else self.GRID["neighbours"],
                shrink=[self.shrink] if self.shrink is not None else self.GRID["shrink"],
            ))
            self.neighbours, self.shrink = int(result.best["neighbours"]), float(result.best["shrink"])
            self._tuning = _tuned_params(result)
        x = data.matrix.matrix.tocsr().astype(np.float32)
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0), dtype=np.float64)).ravel()
        dots = (x.T @ x).tocoo()
        off_diag = dots.row != dots.col
        rows, cols = dots.row[off_diag], dots.col[off_diag]
        sims = dots.data[off_diag] / (norms[rows] * norms[cols] + self.shrink)
        similarity = sp.coo_matrix((sims.astype(np.float32), (rows, cols)), shape=dots.shape)
        self._w = _top_k_per_column(similarity, self.neighbours)
        self._x = x
        return self

    def score_users(self, user_rows: np.ndarray) -> np.ndarray:
        return (self._x[user_rows] @ self._w).toarray()

    def params(self) -> dict:
        return {"neighbours": self.neighbours, "shrink": self.shrink, "similarity": "cosine", **self._tuning}


class EASE(Recommender):
    """Embarrassingly Shallow Autoencoder (Steck 2019): closed-form item-item weights
    ``B = I - P diag(1/diag(P))``, ``P = (X^T X + lambda I)^-1``, over the items with a train positive
    (the others cannot be scored and rank last). Cost is one dense inverse per lambda."""

    name = "ease"
    GRID = (100.0, 200.0, 400.0, 800.0)

    def __init__(self, lam: float | None = None, grid: Sequence[float] | None = None) -> None:
        self.lam = lam
        self.grid = tuple(grid) if grid is not None else self.GRID
        self._tuning: dict = {}

    def fit(self, data: TrainData) -> EASE:
        if self.lam is None:
            from smartreco.evaluation.tuning import tune

            result = tune(data, EASE, [{"lam": lam} for lam in self.grid])
            self.lam = float(result.best["lam"])
            self._tuning = _tuned_params(result)
        x = data.matrix.matrix.tocsc().astype(np.float64)
        self._active = np.flatnonzero(np.diff(x.indptr) > 0)
        xa = x[:, self._active].tocsr()
        gram = (xa.T @ xa).toarray()
        gram[np.diag_indices_from(gram)] += self.lam
        p = np.linalg.inv(gram)  # LU; measured faster here than Cholesky potrf+potri
        b = p / (-np.diag(p))
        b[np.diag_indices_from(b)] = 0.0
        self._b = b.astype(np.float32)
        self._xa = xa.astype(np.float32)
        self._n_items = x.shape[1]
        return self

    def score_users(self, user_rows: np.ndarray) -> np.ndarray:
        out = np.full((len(user_rows), self._n_items), UNKNOWN_ITEM_SCORE, dtype=np.float32)
        out[:, self._active] = self._xa[user_rows] @ self._b
        return out

    def params(self) -> dict:
        active = getattr(self, "_active", None)
        return {"lambda": self.lam, "items_modelled": None if active is None else int(len(active)), **self._tuning}


def _als_threads(nnz: int) -> int:
    """Threads for implicit's OpenMP loop (BLAS inside it is held at 1 to avoid oversubscription).

    Below ~1M non-zeros one thread wins: measured on 2 shared cores, MovieLens-small (39k positives)
    fits in 0.9 s with 1 thread and 1.8-2.2 s with 2 (thread spin-up and contention). Override with
    ``SMARTRECO_ALS_THREADS``.
    """
    env = settings.ALS_THREADS.get()
    if env:
        return env
    return 1 if nnz < 1_000_000 else max(1, os.cpu_count() or 1)


class ALS(Recommender):
    """Implicit-feedback matrix factorisation (Hu, Koren, Volinsky 2008) from the ``implicit`` package,
    CPU, conjugate-gradient solver, fixed seed. Confidence = 1 + alpha * (binary positive)."""

    name = "als"
    GRID = {"factors": (64, 128), "regularization": (5.0, 10.0, 20.0), "alpha": (0.5, 1.0, 2.0)}
    ITERATIONS = 15

    def __init__(self, factors: int | None = None, regularization: float | None = None,
                 alpha: float | None = None, iterations: int = ITERATIONS, seed: int = 42) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.seed = seed
        self._tuning: dict = {}

    def fit(self, data: TrainData) -> ALS:
        if self.factors is None or self.regularization is None or self.alpha is None:
            from smartreco.evaluation.tuning import grid, tune

            def axis(value, name):
                return [value] if value is not None else self.GRID[name]

            result = tune(
                data,
                lambda **p: ALS(**p, iterations=self.iterations, seed=self.seed),
                grid(factors=axis(self.factors, "factors"),
                     regularization=axis(self.regularization, "regularization"),
                     alpha=axis(self.alpha, "alpha")),
            )
            self.factors = int(result.best["factors"])
            self.regularization = float(result.best["regularization"])
            self.alpha = float(result.best["alpha"])
            self._tuning = _tuned_params(result)
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        matrix = data.matrix.matrix.tocsr().astype(np.float32)
        with threadpool_limits(1, "blas"):  # implicit's advice: BLAS threads fight its OpenMP loop
            model = AlternatingLeastSquares(
                factors=self.factors, regularization=self.regularization, alpha=self.alpha,
                iterations=self.iterations, random_state=self.seed, num_threads=_als_threads(matrix.nnz),
                calculate_training_loss=False,
            )
            model.fit(matrix, show_progress=False)
        self._users = np.asarray(model.user_factors, dtype=np.float32)
        self._items = np.asarray(model.item_factors, dtype=np.float32)
        return self

    def score_users(self, user_rows: np.ndarray) -> np.ndarray:
        return self._users[user_rows] @ self._items.T

    def params(self) -> dict:
        return {"factors": self.factors, "regularization": self.regularization, "alpha": self.alpha,
                "iterations": self.iterations, "seed": self.seed, **self._tuning}
