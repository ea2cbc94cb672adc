"""Content vectors of new items in a bundle's own content space (the pipeline venv: MiniLM, scikit-learn).

A bundle records its content recipe (``params.content``: ``minilm+tfidf+numeric`` or ``hashed``, with
``cb_dims``) but not the fitted transforms (TF-IDF vocabulary and SVD, IDF weights, numeric z-scores).
So the new rows are encoded together with the catalogue the bundle was trained on, by the same encoder
function training used (:func:`smartreco.models.content.content_encoder`), and the result is checked:
re-encoding the catalogue must reproduce the bundle's stored vectors (median cosine >= ``AGREEMENT``),
otherwise the new vectors would live in another space and the error says so. The catalogue is the
training source the manifest records (``source``: ``movielens`` or the ingest's dataset folder) unless
``--catalogue`` names it; the bundle's own catalogue table (id, title, category) is not enough for any recipe
(they read tags, description, price, dates), and a MiniLM pass over uncached texts costs minutes on 2 cores.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from smartreco.data import columns as C
from smartreco.errors import DataError

#: how closely re-encoding the bundle's catalogue must reproduce its stored vectors (median cosine)
AGREEMENT = 0.98
#: catalogue rows compared for the check (a sample keeps the check cheap at 10M items)
CHECK_ROWS = 2000


def encode_for_bundle(bundle: Any, rows: pd.DataFrame, catalogue: pd.DataFrame | None = None) -> np.ndarray:
    """``(len(rows), dim)`` float32 vectors of canonical ``rows`` in ``bundle``'s content space.

    A bundle object that encodes items itself (``encode_items(rows)``, e.g. a test fake) is asked directly."""
    own = getattr(bundle, "encode_items", None)
    if callable(own):
        return np.asarray(own(rows), dtype=np.float32)
    from smartreco.data.canonical import canonical_items
    from smartreco.models.content import content_encoder

    params = (getattr(bundle, "manifest", None) or {}).get("params") or {}
    name = params.get("content")
    if not name:
        raise DataError("bundle: its manifest names no content encoder (params.content); retrain to serve new items")
    stored = getattr(getattr(bundle, "side", None), "item_vectors", None)
    if stored is None:
        raise DataError("bundle: it has no content vectors (cb_item_vectors)")
    ref = catalogue if catalogue is not None else training_items(bundle)
    ref = canonical_items(ref.drop_duplicates(C.ITEM_ID))
    new_ids = set(rows[C.ITEM_ID].astype(str))
    ref = ref[~ref[C.ITEM_ID].isin(new_ids)].reset_index(drop=True)
    both = pd.concat([ref, rows], ignore_index=True)
    both[C.TAGS] = both[C.TAGS].map(lambda t: list(t) if isinstance(t, (list, tuple, np.ndarray)) else [])
    vectors = np.asarray(content_encoder(str(name), dims=int(params.get("cb_dims", 256)))(both), dtype=np.float32)
    if vectors.shape[1] != stored.shape[1]:
        raise DataError(
            f"content encoder {name}: {vectors.shape[1]} dimensions, the bundle's vectors have {stored.shape[1]}"
        )
    agreement = reproduction(bundle, ref[C.ITEM_ID].astype(str).to_numpy(), vectors[: len(ref)], stored)
    if agreement < AGREEMENT:
        raise DataError(
            f"content encoder {name}: re-encoding the catalogue reproduces the bundle's vectors only to a median "
            f"cosine of {agreement:.3f} (< {AGREEMENT}): pass --catalogue with the items table the bundle was "
            "trained on"
        )
    return vectors[len(ref) :]


def reproduction(bundle: Any, ref_ids: np.ndarray, ref_vectors: np.ndarray, stored: np.ndarray) -> float:
    """Median cosine between re-encoded catalogue items and the bundle's stored vectors (0 when none overlap)."""
    take = np.linspace(0, len(ref_ids) - 1, num=min(CHECK_ROWS, len(ref_ids)), dtype=np.int64) if len(ref_ids) else []
    pos = np.asarray(take, dtype=np.int64)
    found = [bundle.rows([i]) for i in ref_ids[pos]]
    rows = np.asarray([f[0] if len(f) else -1 for f in found], dtype=np.int64)
    ok = rows >= 0
    if not ok.any():
        return 0.0
    a, b = ref_vectors[pos[ok]], np.asarray(stored[rows[ok]], dtype=np.float32)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cos = np.einsum("ij,ij->i", a, b) / np.where(norms > 0, norms, 1.0)
    return float(np.median(cos))


def training_items(bundle: Any) -> pd.DataFrame:
    """The items the bundle was trained on, from the source its manifest records (``movielens``, ``synthetic``
    or the ingest's dataset folder); a DataError asking for ``--catalogue`` when that is not readable here
    (a cluster's path, another machine's run folder)."""
    from smartreco.data.sources import load_source

    source = str((getattr(bundle, "manifest", None) or {}).get("source") or "")
    if not source:
        raise DataError("--catalogue: the bundle does not record its training source; give the items it was trained on")
    try:
        return load_source(source).items
    except Exception as exc:  # noqa: BLE001 - any unreadable source gets the same advice
        raise DataError(
            f"--catalogue: the bundle was trained on {source}, not readable here ({exc}); give the items it was "
            "trained on (movielens, a dataset folder or an items table)"
        ) from None


def add_for_bundle(bundle: Any, rows: pd.DataFrame, store: Any, catalogue: pd.DataFrame | None = None) -> Any:
    """Encode the validated ``rows`` not yet known (to the bundle or the store, for its version) in the
    bundle's content space and store them; returns the :class:`~smartreco.serving.live_items.AddResult`."""
    from smartreco.serving.live_items import AddResult, add_items
    from smartreco.serving.live_ranking import bundle_has

    version = str(getattr(bundle, "version", "unknown"))
    ids = rows[C.ITEM_ID].astype(str).tolist()
    known = bundle_has(bundle, ids) | store.known(version, ids)
    fresh = rows[~rows[C.ITEM_ID].astype(str).isin(known)].reset_index(drop=True)
    if len(fresh) == 0:
        return AddResult(duplicates=ids)
    vectors = encode_for_bundle(bundle, fresh, catalogue)
    result = add_items(store, version, fresh, vectors, in_bundle=set())
    result.duplicates = [i for i in ids if i in known] + result.duplicates
    return result
