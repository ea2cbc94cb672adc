"""Candidate retrieval: exact blocked top-k for small catalogues, a faiss ANN index for large ones.

Scores are maximum inner product with an optional item bias: ``score(q, i) = q . v_i + b_i`` (the CF
model's scoring rule). Both paths return the same thing, ``(item rows, scores)`` best first, with
exact scores, so a caller cannot tell which path answered except by recall.

* :class:`ExactIndex` wraps :func:`smartreco.models.serving_math.topk_blocked` (numpy, one block of
  items at a time): exact, ``O(n)`` per query; fine up to a few hundred thousand items.
* :class:`FaissANNIndex` (``ivf_flat``, ``ivf_pq``, ``hnsw``): the bias is folded into the vectors
  (``[v, b]`` / ``[q, 1]``) and maximum inner product is turned into nearest-neighbour search by
  one extra coordinate ``sqrt(M^2 - |x|^2)`` (Bachrach et al. 2014), because faiss's L2 clustering
  and graphs are far better behaved than inner-product ones on vectors with uneven norms. The
  ANN returns ``k * refine`` candidates, which are re-scored exactly against the raw vectors
  (memory-mapped), then exclusions are dropped and the top ``k`` kept.

Saved layout (one folder): ``index.json`` (kind, sizes, parameters), ``vectors.npy``, optional
``bias.npy``, and for ANN kinds ``faiss.index``. :func:`load_index` memory-maps ``vectors.npy``
and, where faiss supports it, the faiss index itself. numpy + faiss-cpu only (serving venv).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from smartreco import settings
from smartreco.errors import DataError
from smartreco.models.serving_math import topk_blocked

#: catalogues up to this many items use exact search (measured here: ~10 ms per query at 100k x 32, so ~20 ms at 200k)
EXACT_MAX_ITEMS = 200_000
KINDS = ("exact", "ivf_flat", "ivf_pq", "hnsw")
#: the ANN kind used above EXACT_MAX_ITEMS, chosen by benchmarks/scale.py (see benchmarks/results/scale.md)
DEFAULT_ANN_KIND = "ivf_flat"
INDEX_META = "index.json"
VECTORS = "vectors.npy"
BIAS = "bias.npy"
FAISS_FILE = "faiss.index"
FORMAT = "smartreco-retrieval-index"
#: faiss OpenMP threads (env SMARTRECO_FAISS_THREADS). Default 1: measured on the shared 2-core box,
#: 2 OpenMP threads under load made IVF training 10x slower (busy-waiting), and a graph node answers
#: one request per thread anyway.
THREADS_ENV = settings.FAISS_THREADS.name


def _faiss():
    """Import faiss lazily (the exact path needs only numpy) and pin its thread count."""
    import faiss

    faiss.omp_set_num_threads(settings.FAISS_THREADS.get())
    return faiss


def choose_index_kind(n_items: int, exact_max_items: int | None = None) -> str:
    """``"exact"`` for catalogues up to ``exact_max_items`` (default :data:`EXACT_MAX_ITEMS`) items, else
    the measured ANN kind."""
    limit = EXACT_MAX_ITEMS if exact_max_items is None else exact_max_items
    return "exact" if int(n_items) <= int(limit) else DEFAULT_ANN_KIND


#: most IVF cells: k-means and assignment cost grow with nlist, and 2 cores must build 10M items
MAX_NLIST = 4096
#: above this many items the IVF coarse quantizer is an HNSW graph (fast assignment while adding)
HNSW_QUANTIZER_MIN_ITEMS = 2_000_000


def default_nlist(n_items: int) -> int:
    """IVF cells: ~4 sqrt(n) capped at MAX_NLIST, at most n/39 (faiss wants >= 39 training points per cell)."""
    return int(max(1, min(4 * int(np.sqrt(n_items)), MAX_NLIST, n_items // 39 or 1)))


def _as_matrix(vectors: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(vectors)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DataError(f"{name}: expected a non-empty 2-D array, got shape {arr.shape}")
    if arr.dtype != np.float32:
        arr = arr.astype(np.float32)
    return arr


def _check_bias(bias: np.ndarray | None, n: int) -> np.ndarray | None:
    if bias is None:
        return None
    b = np.asarray(bias, dtype=np.float32).ravel()
    if b.shape[0] != n:
        raise DataError(f"bias: expected {n} values (one per item), got {b.shape[0]}")
    return b


def _exclusions(exclude: Sequence[Iterable[int]] | None, n_queries: int) -> list[np.ndarray]:
    if exclude is None:
        return [np.zeros(0, dtype=np.int64)] * n_queries
    if len(exclude) != n_queries:
        raise DataError(f"exclude: expected one entry per query ({n_queries}), got {len(exclude)}")
    return [np.asarray(list(e) if not isinstance(e, np.ndarray) else e, dtype=np.int64).ravel() for e in exclude]


@dataclass
class Index:
    """Common part: raw item vectors (+ bias), exact re-scoring and persistence."""

    vectors: np.ndarray
    bias: np.ndarray | None = None
    params: dict = field(default_factory=dict)
    kind: str = "exact"

    @property
    def n_items(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def _queries(self, queries: np.ndarray) -> np.ndarray:
        q = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if q.shape[1] != self.dim:
            raise DataError(f"queries: expected dimension {self.dim}, got {q.shape[1]}")
        return np.ascontiguousarray(q)

    def search(self, queries: np.ndarray, k: int, exclude: Sequence[Iterable[int]] | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` item rows and exact scores per query row, best first (-1 / -inf pads)."""
        raise NotImplementedError

    # persistence ---------------------------------------------------------------------------------
    def save(self, path: Path | str) -> Path:
        """Write the folder layout described in the module docstring; returns the folder."""
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        np.save(out / VECTORS, np.ascontiguousarray(self.vectors, dtype=np.float32))
        if self.bias is not None:
            np.save(out / BIAS, np.asarray(self.bias, dtype=np.float32))
        self._save_extra(out)
        meta = {"format": FORMAT, "version": 1, "kind": self.kind, "n_items": self.n_items, "dim": self.dim,
                "has_bias": self.bias is not None, "params": self.params}
        (out / INDEX_META).write_text(json.dumps(meta, indent=2))
        return out

    def _save_extra(self, out: Path) -> None:  # noqa: B027 - optional hook
        pass


class ExactIndex(Index):
    """Exact top-k by blocked matrix product (numpy only)."""

    def __init__(self, vectors: np.ndarray, bias: np.ndarray | None = None, block_size: int = 65_536) -> None:
        v = _as_matrix(vectors, "vectors")
        super().__init__(vectors=v, bias=_check_bias(bias, v.shape[0]), params={"block_size": int(block_size)},
                         kind="exact")

    def search(self, queries, k, exclude=None):
        q = self._queries(queries)
        return topk_blocked(q, self.vectors, int(k), bias=self.bias, exclude=exclude,
                            block_size=int(self.params.get("block_size", 65_536)))


def _augment_items(vectors: np.ndarray, bias: np.ndarray | None, max_norm: float | None = None
                   ) -> tuple[np.ndarray, float]:
    """``[v, b, sqrt(M^2 - |[v, b]|^2)]``: nearest neighbour of ``[q, 1, 0]`` = max ``q.v + b``."""
    x = vectors if bias is None else np.hstack([vectors, bias[:, None]])
    x = np.asarray(x, dtype=np.float32)
    sq = np.einsum("ij,ij->i", x, x, dtype=np.float64)
    m2 = float(sq.max()) if max_norm is None else float(max_norm) ** 2
    extra = np.sqrt(np.maximum(m2 - sq, 0.0)).astype(np.float32)
    return np.ascontiguousarray(np.hstack([x, extra[:, None]])), float(np.sqrt(m2))


def _augment_queries(q: np.ndarray, has_bias: bool) -> np.ndarray:
    cols = [q] + ([np.ones((len(q), 1), np.float32)] if has_bias else []) + [np.zeros((len(q), 1), np.float32)]
    return np.ascontiguousarray(np.hstack(cols))


class FaissANNIndex(Index):
    """faiss IVF-Flat / IVF-PQ / HNSW on MIPS-to-L2 augmented vectors, re-scored exactly."""

    def __init__(self, vectors: np.ndarray, bias: np.ndarray | None, faiss_index, params: dict, kind: str) -> None:
        super().__init__(vectors=vectors, bias=bias, params=params, kind=kind)
        self.faiss_index = faiss_index
        self.set_search_params(**{k: params[k] for k in ("nprobe", "ef_search", "refine") if k in params})

    @classmethod
    def build(cls, vectors: np.ndarray, bias: np.ndarray | None = None, kind: str = DEFAULT_ANN_KIND, *,
              nlist: int | None = None, nprobe: int = 32, pq_m: int | None = None, hnsw_m: int = 32,
              ef_construction: int = 80, ef_search: int = 128, refine: int = 4, train_size: int = 200_000,
              kmeans_iter: int = 10, seed: int = 0, add_chunk: int = 500_000, progress: bool = False,
              quantizer: str = "auto") -> FaissANNIndex:
        """Train (IVF: k-means on a ``train_size`` sample) and add all vectors in chunks.

        ``quantizer`` (IVF kinds): ``"flat"`` (exact coarse assignment, one BLAS product per added
        chunk), ``"hnsw"`` (an HNSW graph over the centroids) or ``"auto"`` (hnsw from
        :data:`HNSW_QUANTIZER_MIN_ITEMS` items)."""
        faiss = _faiss()

        if kind not in ("ivf_flat", "ivf_pq", "hnsw"):
            raise DataError(f"kind: expected ivf_flat, ivf_pq or hnsw, got {kind!r}")
        v = _as_matrix(vectors, "vectors")
        b = _check_bias(bias, v.shape[0])
        n = v.shape[0]
        # norm of the largest augmented item, computed in chunks (no full augmented copy at once)
        m2 = 0.0
        for s in range(0, n, add_chunk):
            x = v[s:s + add_chunk].astype(np.float64)
            sq = np.einsum("ij,ij->i", x, x) + (0.0 if b is None else b[s:s + add_chunk].astype(np.float64) ** 2)
            m2 = max(m2, float(sq.max()))
        max_norm = float(np.sqrt(m2))
        d = v.shape[1] + (1 if b is not None else 0) + 1
        params: dict = {"max_norm": max_norm, "refine": int(refine), "aug_dim": d}
        if kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, int(hnsw_m))
            index.hnsw.efConstruction = int(ef_construction)
            params.update(hnsw_m=int(hnsw_m), ef_construction=int(ef_construction), ef_search=int(ef_search))
        else:
            nl = int(nlist or default_nlist(n))
            if quantizer not in ("auto", "flat", "hnsw"):
                raise DataError(f"quantizer: expected auto, flat or hnsw, got {quantizer!r}")
            if quantizer == "hnsw" or (quantizer == "auto" and n >= HNSW_QUANTIZER_MIN_ITEMS):
                coarse = faiss.IndexHNSWFlat(d, 32)
                coarse.hnsw.efSearch = 64
                params["quantizer"] = "hnsw32"
            else:
                coarse = faiss.IndexFlatL2(d)
                params["quantizer"] = "flat"
            if kind == "ivf_flat":
                index = faiss.IndexIVFFlat(coarse, d, nl)
            else:
                m = int(pq_m or _pq_m(d))
                index = faiss.IndexIVFPQ(coarse, d, nl, m, 8)
                params["pq_m"] = m
            index.cp.niter = int(kmeans_iter)
            index.cp.seed = int(seed)
            params.update(nlist=nl, nprobe=int(min(nprobe, nl)), kmeans_iter=int(kmeans_iter))
            rng = np.random.default_rng(seed)
            take = np.sort(rng.choice(n, size=min(n, max(int(train_size), nl * 39)), replace=False))
            sample, _ = _augment_items(v[take], None if b is None else b[take], max_norm)
            t0 = time.perf_counter()
            index.train(sample)
            params["train_seconds"] = round(time.perf_counter() - t0, 2)
            del sample
        chunks = range(0, n, add_chunk)
        if progress:
            from tqdm.auto import tqdm

            chunks = tqdm(chunks, desc=f"index add ({kind})", unit="chunk")
        for s in chunks:
            x, _ = _augment_items(v[s:s + add_chunk], None if b is None else b[s:s + add_chunk], max_norm)
            index.add(x)
        return cls(v, b, index, params, kind)

    def set_search_params(self, nprobe: int | None = None, ef_search: int | None = None,
                          refine: int | None = None) -> None:
        """Speed/recall knobs; also stored in ``params`` so a saved index keeps them."""
        if nprobe is not None and hasattr(self.faiss_index, "nprobe"):
            self.faiss_index.nprobe = int(nprobe)
            self.params["nprobe"] = int(nprobe)
        if ef_search is not None and hasattr(self.faiss_index, "hnsw"):
            self.faiss_index.hnsw.efSearch = int(ef_search)
            self.params["ef_search"] = int(ef_search)
        if refine is not None:
            self.params["refine"] = max(1, int(refine))

    def search(self, queries, k, exclude=None):
        q = self._queries(queries)
        k = int(min(k, self.n_items))
        ex = _exclusions(exclude, len(q))
        out_idx = np.full((len(q), max(k, 0)), -1, dtype=np.int64)
        out_val = np.full((len(q), max(k, 0)), -np.inf, dtype=np.float32)
        if k <= 0:
            return out_idx, out_val
        longest = max((len(e) for e in ex), default=0)
        kk = int(min(self.n_items, k * int(self.params.get("refine", 1)) + longest))
        _, cand = self.faiss_index.search(_augment_queries(q, self.bias is not None), kk)
        for r in range(len(q)):  # one row per query (a handful at request time)
            c = cand[r]
            c = c[c >= 0]
            if len(ex[r]):
                c = c[~np.isin(c, ex[r])]
            if len(c) == 0:
                continue
            order_rows = np.sort(c)  # sorted gathers are friendlier to a memory-mapped file
            s = np.asarray(self.vectors[order_rows], dtype=np.float32) @ q[r]
            if self.bias is not None:
                s = s + np.asarray(self.bias[order_rows], dtype=np.float32)
            top = np.lexsort((order_rows, -s))[:k]
            out_idx[r, :len(top)] = order_rows[top]
            out_val[r, :len(top)] = s[top]
        return out_idx, out_val

    def _save_extra(self, out: Path) -> None:
        faiss = _faiss()

        faiss.write_index(self.faiss_index, str(out / FAISS_FILE))


def _pq_m(d: int) -> int:
    """Largest PQ sub-quantiser count <= d/2 that divides ``d`` (8-bit codes)."""
    for m in range(max(1, d // 2), 0, -1):
        if d % m == 0:
            return m
    return 1


def build_index(vectors: np.ndarray, bias: np.ndarray | None = None, kind: str = "auto", **params) -> Index:
    """Exact or ANN index over item vectors; ``kind="auto"`` picks by catalogue size (:func:`choose_index_kind`)."""
    v = _as_matrix(vectors, "vectors")
    if kind == "auto":
        kind = choose_index_kind(v.shape[0])
    if kind not in KINDS:
        raise DataError(f"kind: expected auto or one of {', '.join(KINDS)}, got {kind!r}")
    if kind == "exact":
        return ExactIndex(v, bias, **{k: p for k, p in params.items() if k == "block_size"})
    return FaissANNIndex.build(v, bias, kind, **params)


def load_index(path: Path | str, mmap: bool = True) -> Index:
    """Open a saved index; ``mmap=True`` maps the vectors (and the faiss file where supported)."""
    folder = Path(path)
    meta_path = folder / INDEX_META
    if not meta_path.exists():
        raise DataError(f"{meta_path}: retrieval index metadata missing")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != FORMAT or meta.get("kind") not in KINDS:
        raise DataError(f"{meta_path}: not a {FORMAT} (format/kind fields)")
    mode = "r" if mmap else None
    vectors = np.load(folder / VECTORS, mmap_mode=mode)
    bias = np.load(folder / BIAS) if meta.get("has_bias") else None
    if vectors.shape != (meta["n_items"], meta["dim"]):
        raise DataError(f"{folder / VECTORS}: shape {vectors.shape} != index.json {meta['n_items']} x {meta['dim']}")
    params = dict(meta.get("params", {}))
    if meta["kind"] == "exact":
        idx = ExactIndex.__new__(ExactIndex)
        Index.__init__(idx, vectors=vectors, bias=bias, params=params, kind="exact")
        return idx
    faiss = _faiss()
    flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
    try:
        fidx = faiss.read_index(str(folder / FAISS_FILE), flags)
    except RuntimeError:  # index type without mmap support: read it into memory
        fidx = faiss.read_index(str(folder / FAISS_FILE))
    return FaissANNIndex(vectors, bias, fidx, params, meta["kind"])


def recall_at_k(approx: np.ndarray, exact: np.ndarray, k: int | None = None) -> float:
    """Mean over queries of |approx top-k  exact top-k| / |exact top-k| (pads of -1 ignored)."""
    approx, exact = np.atleast_2d(approx), np.atleast_2d(exact)
    k = k or exact.shape[1]
    hits, total = 0, 0
    for a, e in zip(approx[:, :k], exact[:, :k], strict=True):
        e = e[e >= 0]
        hits += int(np.isin(a[a >= 0], e).sum())
        total += len(e)
    return hits / total if total else 1.0
