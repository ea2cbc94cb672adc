"""Content-based recommender: item vectors from text + metadata, user profile = recency-weighted mean.

Item vector = L2-normalised concatenation of weighted blocks, each L2-normalised first so a weight
means "share of the cosine":

* MiniLM sentence embedding of title/category/tags/description (:mod:`smartreco.features.embeddings`);
* TF-IDF over title/category/tags, reduced with TruncatedSVD so it stays dense and small;
* numeric features when present (price, release year, log popularity), z-scored and clipped.

Scores are dot products, and every top-k goes through the blocked
:func:`~smartreco.models.serving_math.topk_blocked`, so no ``n x n`` similarity matrix is ever built.
Weak on MovieLens alone (few words per film); it exists for cold start and as a hybrid feature.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from smartreco.data import columns as C
from smartreco.data.canonical import positive_mask
from smartreco.errors import DataError
from smartreco.models import serving_math as S
from smartreco.models.base import Recommender, TrainData

EmbedFn = Callable[[pd.DataFrame], np.ndarray]


@dataclass
class ContentConfig:
    w_text: float = 1.0  # MiniLM block
    w_tfidf: float = 1.0  # TF-IDF (+SVD) block
    w_numeric: float = 0.1  # price / year / popularity block
    numeric_popularity: bool = True  # log popularity in the numeric block (the served encoder leaves it out)
    svd_dim: int = 128
    half_life: float = 10.0  # recency half-life of the profile, in interactions
    use_text_embeddings: bool = True
    cache_dir: str | None = None  # MiniLM content-hash cache (default: runs/cache/minilm)
    block_size: int = S.DEFAULT_BLOCK
    seed: int = 0


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0).astype(np.float32)


def tfidf_texts(items: pd.DataFrame) -> pd.Series:
    """Title, category and tags as one bag of words (tags joined with spaces)."""
    tags = items[C.TAGS].map(lambda t: " ".join(map(str, t)) if isinstance(t, (list, tuple, np.ndarray)) else "") \
        if C.TAGS in items else ""
    cat = items[C.CATEGORY].fillna("").astype(str) if C.CATEGORY in items else ""
    return items[C.TITLE].fillna("").astype(str) + " " + cat + " " + tags


def tfidf_block(items: pd.DataFrame, svd_dim: int, seed: int = 0) -> np.ndarray:
    """Row-normalised TF-IDF, reduced to ``svd_dim`` dense columns when the vocabulary is larger."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = tfidf_texts(items)
    vec = TfidfVectorizer(min_df=2 if len(items) >= 50 else 1, max_features=200_000, sublinear_tf=True,
                          token_pattern=r"(?u)\b\w[\w-]+\b")
    try:
        mat = vec.fit_transform(texts)
    except ValueError:  # empty vocabulary
        return np.zeros((len(items), 1), dtype=np.float32)
    if mat.shape[1] > svd_dim and len(items) > svd_dim:
        dense = TruncatedSVD(n_components=svd_dim, random_state=seed).fit_transform(mat)
    else:
        dense = mat.toarray()
    return _normalise(np.asarray(dense, dtype=np.float32))


def numeric_block(items: pd.DataFrame, popularity: np.ndarray | None) -> np.ndarray | None:
    """z-scored (clipped to +-3, scaled to norm <= 1) price, year and log popularity; None if none vary."""
    cols = []
    if C.PRICE in items:
        cols.append(pd.to_numeric(items[C.PRICE], errors="coerce").to_numpy(dtype=np.float64))
    if C.CREATED_DATE in items:
        cols.append(pd.to_datetime(items[C.CREATED_DATE], utc=True, errors="coerce").dt.year.to_numpy(dtype=np.float64))
    if popularity is not None:
        cols.append(np.log1p(np.asarray(popularity, dtype=np.float64)))
    blocks = []
    for col in cols:
        finite = np.isfinite(col)
        if finite.sum() < 2 or np.nanstd(col[finite]) == 0:
            continue
        z = (col - np.nanmean(col[finite])) / np.nanstd(col[finite])
        blocks.append(np.clip(np.where(finite, z, 0.0), -3, 3) / 3.0)
    if not blocks:
        return None
    return (np.stack(blocks, axis=1) / np.sqrt(len(blocks))).astype(np.float32)


@dataclass
class ContentRecommender(Recommender):
    """Content item vectors + recency-weighted user profiles behind the :class:`Recommender` contract."""

    config: ContentConfig = field(default_factory=ContentConfig)
    embed_fn: EmbedFn | None = None  # items -> (n, d) vectors; default MiniLM with the content-hash cache
    name: str = "cb"

    def __post_init__(self) -> None:
        self.item_ids: pd.Index | None = None
        self.item_vectors: np.ndarray | None = None
        self.user_ids: pd.Index | None = None
        self.profiles: np.ndarray | None = None
        self.blocks: dict[str, int] = {}

    # ---------------------------------------------------------------------------------- item vectors
    def _embed(self, items: pd.DataFrame) -> np.ndarray:
        if self.embed_fn is not None:
            return np.asarray(self.embed_fn(items), dtype=np.float32)
        from smartreco.features.embeddings import encode_items
        from smartreco.paths import runs_dir

        cache = Path(self.config.cache_dir) if self.config.cache_dir else runs_dir() / "cache" / "minilm"
        return encode_items(items, cache_dir=cache)

    def build_item_vectors(self, items: pd.DataFrame, popularity: np.ndarray | None = None) -> np.ndarray:
        """``(n_items, D)`` float32, rows L2-normalised, in ``items`` order."""
        cfg = self.config
        parts, self.blocks = [], {}
        if cfg.use_text_embeddings and cfg.w_text > 0:
            emb = _normalise(self._embed(items))
            if emb.shape[0] != len(items):
                raise DataError(f"embed_fn: returned {emb.shape[0]} rows for {len(items)} items")
            parts.append(np.sqrt(cfg.w_text) * emb)
            self.blocks["text"] = emb.shape[1]
        if cfg.w_tfidf > 0:
            tf = tfidf_block(items, cfg.svd_dim, cfg.seed)
            parts.append(np.sqrt(cfg.w_tfidf) * tf)
            self.blocks["tfidf"] = tf.shape[1]
        num = numeric_block(items, popularity) if cfg.w_numeric > 0 else None
        if num is not None:
            parts.append(np.sqrt(cfg.w_numeric) * num)
            self.blocks["numeric"] = num.shape[1]
        if not parts:
            raise DataError("content: every feature block has weight 0 (w_text, w_tfidf, w_numeric)")
        return _normalise(np.hstack(parts).astype(np.float32))

    # ------------------------------------------------------------------------------------------ fit
    def fit(self, data: TrainData) -> ContentRecommender:
        item_ids = pd.Index(data.matrix.item_ids)
        items = data.items.drop_duplicates(C.ITEM_ID).set_index(C.ITEM_ID).reindex(item_ids)
        items = items.rename_axis(C.ITEM_ID).reset_index()
        items[C.TITLE] = items[C.TITLE].fillna("")
        popularity = np.asarray((data.matrix.matrix > 0).sum(axis=0)).ravel()
        if not self.config.numeric_popularity:
            popularity = None
        self.item_ids = item_ids
        self.item_vectors = self.build_item_vectors(items, popularity)
        self.user_ids = pd.Index(data.matrix.user_ids)
        self.profiles = self._profiles(data.interactions)
        return self

    def _profiles(self, interactions: pd.DataFrame) -> np.ndarray:
        """Recency-weighted mean of each user's positives (all interactions for users with none)."""
        pos = interactions[positive_mask(interactions)]
        has_pos = set(pos[C.USER_ID].unique())
        fallback = interactions[~interactions[C.USER_ID].isin(has_pos)]
        df = pd.concat([pos, fallback])[[C.USER_ID, C.ITEM_ID, C.TIMESTAMP]]
        df = df.sort_values([C.USER_ID, C.TIMESTAMP], kind="stable")
        age = df.groupby(C.USER_ID).cumcount(ascending=False).to_numpy(dtype=np.float64)
        w = 0.5 ** (age / max(self.config.half_life, 1e-9))
        rows = self.user_ids.get_indexer(df[C.USER_ID])
        cols = self.item_ids.get_indexer(df[C.ITEM_ID])
        ok = (rows >= 0) & (cols >= 0)
        weights = sp.csr_matrix((w[ok], (rows[ok], cols[ok])), shape=(len(self.user_ids), len(self.item_ids)))
        return _normalise(np.asarray(weights @ self.item_vectors, dtype=np.float32))

    def _require(self) -> None:
        if self.item_vectors is None:
            raise RuntimeError("ContentRecommender: call fit() first")

    # -------------------------------------------------------------------------------------- scoring
    def score_users(self, user_rows: np.ndarray) -> np.ndarray:
        self._require()
        return (self.profiles[np.asarray(user_rows, dtype=np.int64)] @ self.item_vectors.T).astype(np.float32)

    def _frame(self, idx: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
        keep = idx >= 0
        return pd.DataFrame({C.ITEM_ID: self.item_ids.to_numpy()[idx[keep]], C.SCORE: scores[keep]})

    def similar_items(self, item_id: str, k: int = 10) -> pd.DataFrame:
        """The ``k`` nearest items by cosine (the item itself excluded), best first."""
        self._require()
        row = self.item_ids.get_indexer([str(item_id)])[0]
        if row < 0:
            raise DataError(f"item_id: {item_id!r} is not in the catalogue")
        idx, scores = S.topk_blocked(self.item_vectors[row][None, :], self.item_vectors, k,
                                     exclude=[[row]], block_size=self.config.block_size)
        return self._frame(idx[0], scores[0])

    def recommend(self, history: Sequence[str], k: int = 10, exclude: Sequence[str] = ()) -> pd.DataFrame:
        """Top-``k`` for a history of item ids (oldest -> newest); history and ``exclude`` never returned."""
        self._require()
        rows = S.history_rows(history, self.item_ids)
        if rows.size == 0:
            return pd.DataFrame({C.ITEM_ID: pd.Series([], dtype=object), C.SCORE: pd.Series([], dtype=np.float32)})
        profile = S.cb_profile_from_history(self.item_vectors, rows, half_life=self.config.half_life)
        banned = np.union1d(rows, S.history_rows(list(exclude), self.item_ids))
        idx, scores = S.topk_blocked(profile[None, :], self.item_vectors, k, exclude=[banned],
                                     block_size=self.config.block_size)
        return self._frame(idx[0], scores[0])

    # --------------------------------------------------------------------------------------- export
    def export(self, out_dir: Path | str) -> Path:
        """``item_vectors.npy`` + ``item_ids.parquet`` + ``cb_meta.json`` for the serving CB node."""
        self._require()
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        np.save(out / S.ITEM_VECTORS, self.item_vectors)
        S.write_ids(out / S.ITEM_IDS, self.item_ids)
        meta = {"model": "content", "dim": int(self.item_vectors.shape[1]), "n_items": len(self.item_ids),
                "blocks": self.blocks, "profile": "recency-weighted mean of positives, L2-normalised",
                "params": self.params()}
        (out / S.CB_META).write_text(json.dumps(meta, indent=2))
        return out

    def params(self) -> dict:
        return {k: v for k, v in asdict(self.config).items() if k != "cache_dir"}


def make_cb(embed_fn: EmbedFn | None = None, **params) -> ContentRecommender:
    """Registry factory: ``make_cb(w_tfidf=0.5)`` -> ContentRecommender with those config fields."""
    return ContentRecommender(ContentConfig(**params), embed_fn=embed_fn)


# ------------------------------------------------------------------------------- named item encoders
#: the served content encoder: MiniLM sentence embeddings + TF-IDF (SVD) + numeric item features
MINILM_CONTENT = "minilm+tfidf+numeric"
HASHED_CONTENT = "hashed"
CONTENT_ENCODERS = (MINILM_CONTENT, HASHED_CONTENT)
#: older spelling of the served encoder (``--encoder minilm``), kept so existing commands still work
_ALIASES = {"minilm": MINILM_CONTENT}


def content_encoder(name: str, cache_dir: str | None = None, dims: int = 256) -> EmbedFn:
    """Items -> L2-normalised content vectors, by encoder name; the function's ``__name__`` is that name,
    so a model that uses it records exactly which encoder produced its vectors.

    ``minilm+tfidf+numeric`` (served): the blocks of :meth:`ContentRecommender.build_item_vectors`
    without the popularity column (popularity is already its own feature and retriever in the hybrid);
    ``hashed``: category/tag tokens hashed into ``dims`` buckets (numpy only, for tests and 10M items).
    """
    resolved = _ALIASES.get(name, name)
    if resolved == MINILM_CONTENT:
        model = ContentRecommender(ContentConfig(cache_dir=cache_dir))

        def encode(items: pd.DataFrame) -> np.ndarray:
            return model.build_item_vectors(items.reset_index(drop=True), popularity=None)
    elif resolved == HASHED_CONTENT:
        from smartreco.models.hybrid import hashed_content_vectors

        def encode(items: pd.DataFrame) -> np.ndarray:
            return hashed_content_vectors(items, dims)
    else:
        raise DataError(f"content encoder: expected one of {', '.join(CONTENT_ENCODERS)}, got {name!r}")
    encode.__name__ = resolved
    return encode


def describe_encoder(name: str) -> dict:
    """What a content encoder name means, for the bundle manifest (``params.content_model``)."""
    from smartreco.features.embeddings import DIM, MODEL_ID

    resolved = _ALIASES.get(name, name)
    if resolved == MINILM_CONTENT:
        cfg = ContentConfig()
        return {"text_model": MODEL_ID, "text_dims": DIM, "tfidf_svd_dims": cfg.svd_dim,
                "numeric": ["price", "release year"],
                "weights": {"text": cfg.w_text, "tfidf": cfg.w_tfidf, "numeric": cfg.w_numeric}}
    if resolved == HASHED_CONTENT:
        return {"text_model": None, "tokens": "category, subcategory, tags hashed into buckets, TF-IDF weighted"}
    return {"text_model": "unknown"}
