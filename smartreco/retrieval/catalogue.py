"""Catalogue ids and labels as flat arrays (memory-mappable), for bundles too big for per-item Python objects.

A 10M-item catalogue as a pandas object column costs ~1 GB of Python strings per column plus a hash
table; here an id column is a fixed-width ``bytes`` array (``S<w>``, row order) plus its sorted copy
and the permutation, so a lookup is one vectorised ``np.searchsorted`` and nothing is built at load
time. :class:`IdIndex` answers the part of ``pd.Index`` the serving runtime uses (``get_indexer``,
``get``, ``ids[row]``); :class:`BytesColumn` and :class:`CodedColumn` decode labels only for the rows
a request returns. numpy only (serving venv).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from smartreco.errors import DataError


def encode_ids(values: Iterable[object]) -> np.ndarray:
    """UTF-8 fixed-width bytes array of string ids (width = the longest)."""
    enc = [str(v).encode("utf-8") for v in values]
    width = max((len(e) for e in enc), default=1) or 1
    return np.asarray(enc, dtype=f"S{width}")


def sorted_with_order(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ids sorted, int64 rows of that order): what :class:`IdIndex` searches."""
    order = np.argsort(ids, kind="stable").astype(np.int64)
    return ids[order], order


class BytesColumn:
    """Row -> str over a fixed-width bytes array (decoded per access)."""

    def __init__(self, values: np.ndarray) -> None:
        if values.dtype.kind != "S":
            raise DataError(f"expected a fixed-width bytes array, got dtype {values.dtype}")
        self.values = values

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def __getitem__(self, rows):
        if np.ndim(rows) == 0:
            return self.values[int(rows)].decode("utf-8")
        return np.asarray([v.decode("utf-8") for v in self.values[np.asarray(rows, dtype=np.int64)]], dtype=object)


class CodedColumn:
    """Row -> label through an integer code array and a small vocabulary (e.g. categories)."""

    def __init__(self, codes: np.ndarray, vocab: Sequence[str]) -> None:
        self.codes = codes
        self.vocab = np.asarray([str(v) for v in vocab], dtype=object)

    def __len__(self) -> int:
        return int(self.codes.shape[0])

    def __getitem__(self, rows):
        if np.ndim(rows) == 0:
            return str(self.vocab[int(self.codes[int(rows)])])
        return self.vocab[np.asarray(self.codes[np.asarray(rows, dtype=np.int64)], dtype=np.int64)]

    def code_of(self, label: str) -> int:
        hit = np.flatnonzero(self.vocab == str(label))
        return int(hit[0]) if len(hit) else -1


class IdIndex(BytesColumn):
    """String id <-> row over ``ids`` (row order), ``sorted_ids`` and ``order`` (all memory-mappable)."""

    def __init__(self, ids: np.ndarray, sorted_ids: np.ndarray | None = None, order: np.ndarray | None = None) -> None:
        super().__init__(ids)
        if sorted_ids is None or order is None:
            sorted_ids, order = sorted_with_order(ids)
        if len(sorted_ids) != len(ids) or len(order) != len(ids):
            raise DataError(f"id index: {len(ids)} ids but {len(sorted_ids)} sorted / {len(order)} order rows")
        self.sorted_ids, self.order = sorted_ids, order
        self.width = int(ids.dtype.itemsize)

    def get_indexer(self, keys: Iterable[object]) -> np.ndarray:
        """Rows of ``keys`` (-1 for unknown ids), like ``pd.Index.get_indexer``."""
        enc = [str(k).encode("utf-8") for k in keys]
        out = np.full(len(enc), -1, dtype=np.int64)
        if not enc or len(self) == 0:
            return out
        fits = np.fromiter((len(e) <= self.width for e in enc), dtype=bool, count=len(enc))
        q = np.asarray([e if f else b"" for e, f in zip(enc, fits, strict=True)], dtype=f"S{self.width}")
        pos = np.minimum(np.searchsorted(self.sorted_ids, q), len(self) - 1)
        hit = fits & (np.asarray(self.sorted_ids[pos]) == q)
        out[hit] = np.asarray(self.order[pos[hit]], dtype=np.int64)
        return out

    def get(self, key: object, default: int = -1) -> int:
        row = int(self.get_indexer([key])[0])
        return row if row >= 0 else default

    def __contains__(self, key: object) -> bool:
        return self.get(key) >= 0


class CompactCatalogue:
    """What the serving runtime reads from a catalogue: ids (both ways), titles and categories, as arrays."""

    def __init__(self, item_index: IdIndex, titles: BytesColumn, categories: CodedColumn) -> None:
        if not len(item_index) == len(titles) == len(categories):
            raise DataError(
                f"compact catalogue: {len(item_index)} ids, {len(titles)} titles, {len(categories)} categories"
            )
        self.item_index, self.titles, self.categories = item_index, titles, categories

    def __len__(self) -> int:
        return len(self.item_index)


#: bundle arrays of the compact ("arrays") catalogue layout, see smartreco.serving.bundle
COMPACT_ARRAYS = ("item_id_bytes", "item_id_sorted", "item_id_order", "title_bytes", "user_id_bytes",
                  "user_id_sorted", "user_id_order")


def compact_arrays(item_ids: np.ndarray, titles: np.ndarray, user_ids: np.ndarray) -> dict[str, np.ndarray]:
    """The :data:`COMPACT_ARRAYS` from fixed-width bytes arrays of item ids, titles and user ids."""
    out = {"item_id_bytes": item_ids, "title_bytes": titles, "user_id_bytes": user_ids}
    out["item_id_sorted"], out["item_id_order"] = sorted_with_order(item_ids)
    out["user_id_sorted"], out["user_id_order"] = sorted_with_order(user_ids)
    return out


def compact_from_arrays(arrays: dict[str, np.ndarray], category_vocab: Sequence[str]
                        ) -> tuple[CompactCatalogue, IdIndex]:
    """(catalogue, user id index) over a bundle's compact arrays (as loaded, memory-mapped)."""
    missing = [a for a in COMPACT_ARRAYS if a not in arrays]
    if missing:
        raise DataError(f"compact catalogue: missing array(s) {', '.join(missing)}")
    items = IdIndex(arrays["item_id_bytes"], arrays["item_id_sorted"], arrays["item_id_order"])
    users = IdIndex(arrays["user_id_bytes"], arrays["user_id_sorted"], arrays["user_id_order"])
    cats = CodedColumn(arrays["category_code"], category_vocab)
    cat = CompactCatalogue(items, BytesColumn(arrays["title_bytes"]), cats)
    return cat, users
