"""The serving bundle: one directory with everything the graph nodes need, and nothing executable.

Layout (``manifest.json`` lists every other file with its SHA-256)::

    manifest.json          format, version, kind, created, feature names, candidate sizes, files{}
    catalogue.parquet      item_id, title, category, popularity, pop_short, item_count, mean_rating
    users.parquet          user_id (row order of cf_user_factors.npy)
    arrays/*.npy           CF user/item factors (+bias), CB item vectors, co-occurrence neighbour
                           table (n_items x k ids + scores), per-item statistics
    ranker.txt             the LightGBM model as text (never a pickle)
    extra/...              optional (e.g. the ONNX CF scorer)

:meth:`ModelBundle.load` verifies every checksum before anything is parsed and refuses a bundle
whose files were changed, added to the manifest's blind spots (path tricks) or are missing. Big
arrays are memory-mapped, so a 10M-item bundle opens without reading it all into RAM (the checksum
pass streams through it once). numpy/pandas/pyarrow/lightgbm only: imports in ``.venv-serving``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from smartreco.data import columns as C
from smartreco.errors import ChecksumError, DataError
from smartreco.models import hybrid_features as F
from smartreco.serving.runtime import BundleRuntime

FORMAT = "smartreco-bundle"
VERSION = 1
MANIFEST = "manifest.json"
CATALOGUE = "catalogue.parquet"
USERS = "users.parquet"
RANKER = "ranker.txt"
ARRAYS = "arrays"
INDEXES = "indexes"
#: arrays every hybrid bundle has (optional ones: cf_item_bias)
REQUIRED_ARRAYS = (
    "cf_user_factors",
    "cf_item_factors",
    "cb_item_vectors",
    "nbr_ids",
    "nbr_scores",
    "category_code",
    "item_count",
    "item_mean_rating",
    "created_s",
    "ctx_channel",
    "ctx_device",
    "ctx_hour",
    "pop_short",
    "pop_long",
)
#: optional extra file: the Lightning CF's ONNX scorer (train_cf), used for CF retrieval when present
CF_SCORER_ONNX = "cf_scorer.onnx"
#: arrays small enough to read eagerly (the rest are memory-mapped)
_MMAP_MIN_BYTES = 1 << 20
_CHUNK = 1 << 22


def sha256_file(path: Path) -> str:
    """Streaming SHA-256 (4 MiB chunks), so checking a multi-GB array needs no extra memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def save_bundle(
    path: Path | str,
    *,
    kind: str,
    catalogue: pd.DataFrame | pa.Table,
    user_ids: np.ndarray,
    arrays: dict[str, np.ndarray],
    ranker_text: str,
    meta: dict,
    extra_files: dict[str, Path] | None = None,
    index_dirs: dict[str, Path] | None = None,
) -> Path:
    """Write a bundle atomically (temp dir + rename): a reader never sees half a bundle.

    ``catalogue`` may be a pyarrow Table (10M rows without pandas objects); ``index_dirs`` ({"cf"|"cb":
    saved :mod:`smartreco.retrieval` index folder}) are added under ``indexes/<name>/`` (hard-linked
    when on the same file system) and opened memory-mapped by the runtime instead of being rebuilt.
    With ``meta["catalogue_layout"] == "arrays"`` the loader reads ids/titles from the compact arrays
    (:mod:`smartreco.retrieval.catalogue`) and not from the parquet files.
    """
    path = Path(path)
    missing = [name for name in REQUIRED_ARRAYS if name not in arrays]
    if missing:
        raise DataError(f"bundle: missing array(s) {', '.join(missing)}")
    names = catalogue.column_names if isinstance(catalogue, pa.Table) else catalogue
    for col in (C.ITEM_ID, C.TITLE, C.CATEGORY):
        if col not in names:
            raise DataError(f"bundle: catalogue needs column {col}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        (tmp / ARRAYS).mkdir()
        if isinstance(catalogue, pa.Table):
            pq.write_table(catalogue, tmp / CATALOGUE)
        else:
            catalogue.reset_index(drop=True).to_parquet(tmp / CATALOGUE, index=False)
        pd.DataFrame({C.USER_ID: pd.Series(np.asarray(user_ids, dtype=object)).astype(str)}).to_parquet(
            tmp / USERS, index=False
        )
        for name, arr in arrays.items():
            if arr is None:
                continue
            np.save(tmp / ARRAYS / f"{name}.npy", np.ascontiguousarray(arr), allow_pickle=False)
        (tmp / RANKER).write_text(ranker_text)
        for rel, src in (extra_files or {}).items():
            dest = tmp / "extra" / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest)
        indexes = {}
        for name, src_dir in (index_dirs or {}).items():
            dest_dir = tmp / INDEXES / name
            dest_dir.mkdir(parents=True)
            for src in sorted(Path(src_dir).iterdir()):
                if src.is_file():
                    _link_or_copy(src, dest_dir / src.name)
            indexes[name] = f"{INDEXES}/{name}"
        files = {p.relative_to(tmp).as_posix(): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "kind": kind,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "feature_names": list(F.FEATURE_NAMES),
            "feature_components": dict(F.FEATURES),
            "n_items": int(len(catalogue)),
            "n_users": int(len(user_ids)),
            **meta,
            **({"indexes": indexes} if indexes else {}),
            "files": files,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=_json_default))
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _index_dir(path: Path, manifest: dict, rel: str) -> Path:
    """A saved index folder inside the bundle, verified like every other bundle file: it must hold its
    metadata, and every file in it (anything :func:`~smartreco.retrieval.index.load_index` may open:
    vectors, bias, the faiss file) must be listed in the manifest, whose checksums
    :func:`verify_bundle` has checked. An unlisted file or a link is refused, not read."""
    from smartreco.retrieval.index import INDEX_META

    folder = (path / rel).resolve()
    if path.resolve() not in folder.parents or not folder.is_dir():
        raise ChecksumError(f"{path / MANIFEST}: index entry {rel!r} is not a verified folder of the bundle")
    listed = {f for f in manifest["files"] if f.startswith(f"{rel}/")}
    if f"{rel}/{INDEX_META}" not in listed:
        raise ChecksumError(f"{path / MANIFEST}: index {rel!r} has no verified {INDEX_META}")
    for p in sorted((path / rel).rglob("*")):
        name = f"{rel}/{p.relative_to(path / rel).as_posix()}"
        if p.is_symlink():
            raise ChecksumError(f"{path / name}: a link inside a bundle index folder")
        if p.is_file() and name not in listed:
            raise ChecksumError(f"{path / name}: index file not listed in the manifest (unverified)")
    return folder


def _link_or_copy(src: Path, dest: Path) -> None:
    """Hard link a big file (no second copy of a multi-GB index), copy small ones (metadata a later edit of
    the source could change in place) and anything across file systems."""
    if src.stat().st_size >= _MMAP_MIN_BYTES:
        try:
            os.link(src, dest)
            return
        except OSError:
            pass
    shutil.copy2(src, dest)


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def verify_bundle(path: Path | str) -> dict:
    """Check the manifest and every listed file's SHA-256; return the manifest or raise ChecksumError."""
    path = Path(path)
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise ChecksumError(f"{path}: not a model bundle ({MANIFEST} missing)")
    try:
        manifest = json.loads(mpath.read_text())
    except json.JSONDecodeError as exc:
        raise ChecksumError(f"{mpath}: unreadable manifest ({exc})") from None
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise ChecksumError(f"{mpath}: unsupported bundle format {manifest.get('format')}/{manifest.get('version')}")
    files = manifest.get("files") or {}
    root = path.resolve()
    for need in (CATALOGUE, USERS, RANKER):
        if need not in files:
            raise ChecksumError(f"{mpath}: {need} not listed in the manifest")
    for rel, expected in files.items():
        target = (path / rel).resolve()
        if root not in target.parents:
            raise ChecksumError(f"{mpath}: file entry {rel!r} points outside the bundle")
        if not target.is_file():
            raise ChecksumError(f"{path / rel}: listed in the manifest but missing")
        actual = sha256_file(target)
        if actual != expected:
            raise ChecksumError(f"{path / rel}: SHA-256 mismatch (expected {expected[:12]}..., got {actual[:12]}...)")
    return manifest


def locate_bundle(path: Path | str) -> Path:
    """The bundle folder itself, or the one inside an MLflow pyfunc model folder (``artifacts/<name>/``),
    so ``models:/smartreco-hybrid@champion`` downloads load directly."""
    path = Path(path)
    if (path / MANIFEST).is_file():
        return path
    if (path / "MLmodel").is_file():
        found = sorted(p.parent for p in (path / "artifacts").glob(f"*/{MANIFEST}"))
        if len(found) == 1:
            return found[0]
    raise ChecksumError(f"{path}: not a model bundle ({MANIFEST} missing)")


@dataclass
class _Loaded:
    manifest: dict
    catalogue: object  # pd.DataFrame, or a CompactCatalogue for the "arrays" layout
    user_ids: np.ndarray
    arrays: dict[str, np.ndarray]
    ranker_text: str


class ModelBundle(BundleRuntime):
    """A verified, loaded bundle; the serving API (``cf_candidates``, ``rank``, ...) is inherited from
    :class:`~smartreco.serving.runtime.BundleRuntime`."""

    path: Path | None = None

    @classmethod
    def load(cls, path: Path | str) -> ModelBundle:
        """Verify every checksum (refuse on mismatch), then open arrays memory-mapped."""
        path = locate_bundle(path)
        manifest = verify_bundle(path)
        arrays: dict[str, np.ndarray] = {}
        for rel in manifest["files"]:
            if rel.startswith(f"{ARRAYS}/") and rel.endswith(".npy"):
                file = path / rel
                mmap = "r" if file.stat().st_size >= _MMAP_MIN_BYTES else None
                # a plain ndarray view of the mapping: the same shared pages, without np.memmap's Python-level
                # __getitem__/__array_finalize__ on every slice and result (~50 per request, ~0.3 ms measured)
                arrays[Path(rel).stem] = np.asarray(np.load(file, mmap_mode=mmap, allow_pickle=False))
        missing = [name for name in REQUIRED_ARRAYS if name not in arrays]
        if missing:
            raise ChecksumError(f"{path}: bundle lacks array(s) {', '.join(missing)}")
        if manifest.get("catalogue_layout") == "arrays":  # 10M items: memory-mapped ids, no pandas objects
            from smartreco.retrieval.catalogue import compact_from_arrays

            catalogue, users = compact_from_arrays(arrays, manifest.get("category_vocab", []))
        else:
            catalogue = pd.read_parquet(path / CATALOGUE)
            users = pd.read_parquet(path / USERS)[C.USER_ID].astype(str).to_numpy(dtype=object)
        loaded = _Loaded(manifest, catalogue, users, arrays, (path / RANKER).read_text())
        bundle = cls.from_parts(loaded.manifest, loaded.catalogue, loaded.user_ids, loaded.arrays, loaded.ranker_text)
        bundle.path = path
        indexes = manifest.get("indexes") or {}
        bundle.index_dirs = {name: _index_dir(path, manifest, rel) for name, rel in indexes.items()}
        bundle.onnx_cf = bundle.extra_file(CF_SCORER_ONNX)
        return bundle

    @property
    def cf_index(self):
        """CF retrieval through the bundle's ONNX scorer (train_cf's export) when it has one and the
        catalogue is scored exactly; otherwise the runtime's index (numpy exact or ANN)."""
        if self._cf_index is None and getattr(self, "onnx_cf", None) is not None and not self.uses_indexes():
            from smartreco.retrieval.onnx_index import OnnxScorerIndex

            bias = None if self.side.item_bias is None else np.asarray(self.side.item_bias, dtype=np.float32)
            self._cf_index = OnnxScorerIndex(self.onnx_cf, self.side.item_factors, bias)
        return super().cf_index

    def extra_file(self, rel: str) -> Path | None:
        """Path of an optional verified extra file (e.g. ``cf_scorer.onnx``), None if the bundle has none."""
        if self.path is None or f"extra/{rel}" not in self.manifest.get("files", {}):
            return None
        return self.path / "extra" / rel
