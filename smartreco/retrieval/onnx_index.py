"""The CF retrieval index of a small catalogue served by the exported ONNX scorer (onnxruntime, no torch).

``train_cf`` exports the Lightning MF's item factors and biases as an ONNX graph (user vectors ->
scores over the catalogue, :mod:`smartreco.models.onnx_export`). A bundle that carries it
(``extra/cf_scorer.onnx``) scores CF candidates with that graph, so the CF node runs the model
``train_cf`` trained, not a re-implementation; exclusions and the top-k are the same as
:class:`~smartreco.retrieval.index.ExactIndex` (which stays the path for the hybrid's features and for
catalogues too large for a dense score row).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from smartreco.retrieval.index import ExactIndex


class OnnxScorerIndex(ExactIndex):
    """Exact top-k where the scores come from the ONNX CF scorer (``vectors``/``bias`` kept for re-scoring)."""

    def __init__(self, onnx_path: Path | str, vectors: np.ndarray, bias: np.ndarray | None = None,
                 threads: int = 1) -> None:
        from smartreco.models.onnx_export import OnnxCFScorer

        super().__init__(vectors, bias)
        self.kind = "onnx-exact"
        self.params = {**self.params, "onnx": Path(onnx_path).name}
        self.scorer = OnnxCFScorer(onnx_path, threads=threads)

    def search(self, queries, k, exclude=None):
        q = self._queries(queries)
        scores = np.asarray(self.scorer.scores(q), dtype=np.float32)
        if scores.shape != (len(q), self.n_items):
            raise ValueError(f"cf_scorer.onnx: returned shape {scores.shape}, expected {(len(q), self.n_items)}")
        for row, banned in enumerate(exclude or ()):
            banned = np.asarray(banned if isinstance(banned, np.ndarray) else list(banned), dtype=np.int64)
            if banned.size:
                scores[row, banned[(banned >= 0) & (banned < self.n_items)]] = -np.inf
        k = int(min(max(k, 0), self.n_items))
        idx = np.full((len(q), k), -1, dtype=np.int64)
        val = np.full((len(q), k), -np.inf, dtype=np.float32)
        if k == 0:
            return idx, val
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        top_val = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_val, axis=1, kind="stable")
        top, top_val = np.take_along_axis(top, order, 1), np.take_along_axis(top_val, order, 1)
        keep = np.isfinite(top_val)
        idx[keep], val[keep] = top[keep], top_val[keep]
        return idx, val
