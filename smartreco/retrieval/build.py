"""Offline builders for a 10M-item serving bundle's item-side arrays, streaming and vectorised.

* :func:`content_vectors`: a cheap content vector per item instead of sentence-encoding 10M texts
  (impossible on 2 CPU cores): the words of title + description plus category / subcategory / brand
  tokens, TF-IDF weighted, each token mapped to a fixed random Gaussian direction (seeded by the
  token's CRC32, so the same token gets the same direction in every chunk and every run) and summed,
  then L2-normalised: a random projection of the hashed TF-IDF bag of words (Johnson-Lindenstrauss),
  ``dim`` floats per item. IDF comes from the first chunk (tokens not seen there get the largest IDF).
* :func:`covisit_neighbours`: the co-occurrence neighbour table (``n x k`` ids + cosine scores) from
  items that follow each other in a user's interaction sequence, by sorting int64 pair keys (no
  sparse n x n matrix).
* ``item_event_stats``: popularity windows, counts, mean rating and channel/device/hour shares per
  item over interaction batches aligned with the CF pair shards: the hybrid's own builder,
  :func:`smartreco.models.item_stats.item_event_stats` (one set of constants for both paths).

Pipeline venv (pyarrow + scipy); nothing here runs at request time.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from smartreco.data import columns as C

# the per-item statistics: the hybrid's own builder, re-exported for the 10M path (one set of constants)
from smartreco.models.item_stats import item_event_stats as item_event_stats


# ------------------------------------------------------------------------------------------ content
class TokenProjector:
    """token -> fixed random unit-variance direction (cached; seeded by CRC32 of the token)."""

    def __init__(self, dim: int, seed: int = 0) -> None:
        self.dim, self.seed = int(dim), int(seed)
        self._cache: dict[str, np.ndarray] = {}

    def matrix(self, tokens: list[str]) -> np.ndarray:
        out = np.empty((len(tokens), self.dim), dtype=np.float32)
        for i, tok in enumerate(tokens):
            vec = self._cache.get(tok)
            if vec is None:
                rng = np.random.default_rng([self.seed, zlib.crc32(tok.encode("utf-8"))])
                vec = self._cache[tok] = rng.standard_normal(self.dim).astype(np.float32)
            out[i] = vec
        return out


def _tokens(batch: pa.RecordBatch) -> tuple[np.ndarray, pa.Array]:
    """(row of each token, token strings) of a batch of items."""
    cols = {name: batch.column(name) for name in batch.schema.names}
    text = pc.binary_join_element_wise(cols[C.TITLE], cols[C.DESCRIPTION], " ")
    text = pc.replace_substring_regex(pc.utf8_lower(text), r"[^\w ]+", "")
    words = pc.split_pattern(text, " ")
    flat = [pc.list_flatten(words)]
    rows = [np.asarray(pc.list_parent_indices(words), dtype=np.int64)]
    n = batch.num_rows
    for prefix, name in (("c:", C.CATEGORY), ("s:", C.SUBCATEGORY), ("b:", C.BRAND)):
        if name in cols:
            flat.append(pc.binary_join_element_wise(prefix, pc.utf8_lower(cols[name]), ""))
            rows.append(np.arange(n, dtype=np.int64))
    toks = pa.concat_arrays([f.cast(pa.string()) for f in flat])
    row = np.concatenate(rows)
    keep = np.asarray(pc.fill_null(pc.greater(pc.utf8_length(toks), 0), False), dtype=bool)
    return row[keep], toks.filter(pa.array(keep))


def content_vectors(batches: Iterable[pa.RecordBatch], out: np.ndarray, seed: int = 0) -> dict:
    """Fill ``out`` (n x dim, e.g. an ``open_memmap``) with the content vectors of the items in ``batches``
    (in row order). Returns counts for the report."""
    proj = TokenProjector(out.shape[1], seed)
    idf: dict[str, float] = {}
    idf_default, start, n_tokens = None, 0, 0
    for batch in batches:
        n = batch.num_rows
        row, toks = _tokens(batch)
        enc = pc.dictionary_encode(toks).combine_chunks() if isinstance(toks, pa.ChunkedArray) else \
            pc.dictionary_encode(toks)
        codes = np.asarray(enc.indices, dtype=np.int64)
        vocab = enc.dictionary.to_pylist()
        tf = sp.csr_matrix((np.ones(len(codes), np.float32), (row, codes)), shape=(n, len(vocab)))
        tf.sum_duplicates()
        if idf_default is None:  # IDF from the first chunk (documents per token = stored entries per column)
            df = np.bincount(tf.indices, minlength=len(vocab))
            idf = {t: float(np.log((1 + n) / (1 + d)) + 1.0) for t, d in zip(vocab, df, strict=True)}
            idf_default = float(np.log(1 + n) + 1.0)
        w = np.asarray([idf.get(t, idf_default) for t in vocab], dtype=np.float32)
        m = sp.csr_matrix((tf.data * w[tf.indices], tf.indices, tf.indptr), shape=tf.shape)
        vec = np.asarray(m @ proj.matrix(vocab), dtype=np.float32)
        norms = np.linalg.norm(vec, axis=1, keepdims=True)
        out[start:start + n] = vec / np.where(norms > 0, norms, 1.0)
        start += n
        n_tokens += len(codes)
    return {"items": start, "tokens": n_tokens, "distinct_tokens": len(proj._cache), "dim": out.shape[1],
            "idf_from_first_chunk_items": None if idf_default is None else len(idf)}


# ------------------------------------------------------------------------------------ co-occurrence
def covisit_neighbours(pairs: np.ndarray, n_items: int, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` co-visited items per item (``int32`` ids, -1 pads; ``float32`` cosine scores).

    ``pairs``: ``(m, 2)`` (user row, item row) in event order. Two items co-occur when one follows
    the other in the same user's sequence (both directions); score = count / sqrt(n_a * n_b) with
    n = an item's number of events.
    """
    order = np.argsort(pairs[:, 0], kind="stable")
    users = pairs[order, 0]
    items = pairs[order, 1].astype(np.int64)
    del order
    same = users[1:] == users[:-1]
    a, b = items[:-1][same], items[1:][same]
    del users
    ok = a != b
    a, b = a[ok], b[ok]
    keys = np.concatenate([a * n_items + b, b * n_items + a])
    del a, b
    keys, counts = np.unique(keys, return_counts=True)
    src, dst = keys // n_items, keys % n_items
    del keys
    freq = np.bincount(items, minlength=n_items).astype(np.float64)
    score = (counts / np.sqrt(np.maximum(freq[src] * freq[dst], 1.0))).astype(np.float32)
    del counts
    # per source: best scores first (src is already sorted; sort within each source by -score)
    order = np.lexsort((-score, src))
    src, dst, score = src[order], dst[order], score[order]
    del order
    starts = np.searchsorted(src, np.arange(n_items))
    rank = np.arange(len(src)) - starts[src]
    keep = rank < k
    ids = np.full((n_items, k), -1, dtype=np.int32)
    scores = np.zeros((n_items, k), dtype=np.float32)
    ids[src[keep], rank[keep]] = dst[keep]
    scores[src[keep], rank[keep]] = score[keep]
    return ids, scores


def last_items(pairs: np.ndarray, n_users: int, k: int = 10) -> np.ndarray:
    """Each user's last ``k`` items in event order (``n_users x k`` int32, oldest first, -1 pads at the start)."""
    order = np.argsort(pairs[:, 0], kind="stable")
    users, items = pairs[order, 0].astype(np.int64), pairs[order, 1]
    ends = np.searchsorted(users, np.arange(n_users), side="right")
    pos_from_end = ends[users] - np.arange(len(users))  # 1 = the user's last event
    keep = pos_from_end <= k
    out = np.full((n_users, k), -1, dtype=np.int32)
    out[users[keep], k - pos_from_end[keep]] = items[keep]
    return out
