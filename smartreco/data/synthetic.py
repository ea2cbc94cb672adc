"""Synthetic e-commerce data with a known latent structure, from 100 rows to 50M interactions.

Why: MovieLens is small and has only ratings; the scale benchmarks (10M items, 50M events), the
multi-type implicit signals (view/click/cart/purchase), channels, devices and sessions need data
that looks like a shop. Because the tastes that generated it are known (``meta``), tests can check
that a model recovers them.

Model (all vectorised, no per-row Python):
- items fall into categories (Zipf-sized) and subcategories ("clusters"); an item's latent vector is
  its cluster centroid plus noise; within a cluster, popularity is Zipf over a random rank order.
- users have Dirichlet category preferences (biased by age group), a latent vector, a Pareto activity
  level (higher for paying tiers) and a registration date (user index order = sign-up order).
- interactions come in sessions: a user (by activity, among those registered by then), a start time
  (diurnal), a channel/device and a focus category; each event either revisits the session's last
  item (funnel) or picks a new one: category (focus or preferences) -> subcategory (softmax of
  user x centroid) -> K candidates by popularity (inverse-CDF on per-cluster cumulative weights)
  -> the candidate with the best Gumbel-perturbed affinity. Event type and rating depend on affinity.

Everything is drawn from ``numpy.random.default_rng([seed, stage, chunk])`` streams, so the output
is a pure function of (sizes, seed, chunk_rows): same inputs, byte-identical parquet.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from smartreco.data import columns as C
from smartreco.data.canonical import CanonicalData, canonicalize
from smartreco.errors import DataError

#: rows per parquet part (and per in-memory generation step); part of the determinism key
DEFAULT_CHUNK_ROWS = 1_000_000
PERIOD_START = pd.Timestamp("2024-01-01", tz="UTC")
PERIOD_DAYS = 366
NS_PER_S = 1_000_000_000
DAY_NS = 86_400 * NS_PER_S

# --- vocabulary: category -> (subcategories, nouns, descriptive words, typical price) --------------
_CATEGORIES: dict[str, tuple[str, str, str, float]] = {
    "electronics": ("audio cameras laptops phones wearables accessories",
                    "headphones speaker charger tablet monitor keyboard router earbuds",
                    "wireless bluetooth battery charging digital hd usb portable", 120.0),
    "books": ("fiction mystery science history biography cookbooks",
              "novel paperback hardcover anthology guide memoir journal atlas",
              "author chapters story bestseller edition reading pages literary", 18.0),
    "fashion": ("dresses shoes jackets shirts bags accessories",
                "dress sneakers jacket shirt handbag scarf boots jeans",
                "cotton fit style casual denim leather wardrobe fabric", 45.0),
    "home": ("kitchen bedding furniture decor lighting storage",
             "lamp pillow blanket chair shelf vase cookware rug",
             "cozy interior living room decorative ceramic wooden household", 60.0),
    "sports": ("running cycling fitness yoga team swimming",
               "ball racket mat dumbbell helmet jersey bottle bike",
               "training workout athletic performance gym outdoor endurance sweat", 50.0),
    "beauty": ("skincare makeup fragrance haircare nails bath",
               "serum lipstick perfume shampoo lotion mascara cleanser polish",
               "hydrating glow skin scent moisturizing gentle radiant fresh", 25.0),
    "toys": ("puzzles dolls building plush vehicles educational",
             "puzzle doll blocks teddy car robot kite playset",
             "kids play fun imagination children colorful learning toddler", 30.0),
    "grocery": ("snacks beverages pantry organic breakfast sweets",
                "coffee tea chocolate cereal pasta sauce cookies honey",
                "flavor tasty organic delicious roasted sweet savory healthy", 8.0),
    "music": ("rock jazz classical pop hiphop electronic",
              "album vinyl guitar piano drums ukulele microphone amplifier",
              "melody sound band rhythm acoustic concert songs instrument", 35.0),
    "movies": ("action comedy drama documentary animation thriller",
               "bluray dvd boxset collection series film trilogy classic",
               "cinema director actors screen plot cinematic scenes sequel", 20.0),
    "garden": ("plants tools seeds outdoor watering planters",
               "shovel hose seeds planter pruner fertilizer trowel greenhouse",
               "garden soil bloom grow flowers lawn backyard green", 28.0),
    "automotive": ("parts tools care electronics tires interior",
                   "wiper mount charger cover polish jack mat dashcam",
                   "car vehicle engine driving road motor auto garage", 40.0),
    "health": ("vitamins supplements fitness care medical wellness",
               "vitamin protein thermometer bandage massager scale capsules powder",
               "wellness immune nutrition daily recovery natural care balance", 22.0),
    "office": ("stationery furniture printing organizers paper supplies",
               "notebook pen stapler desk binder printer planner marker",
               "office work desk productivity writing organize business school", 15.0),
    "pets": ("dogs cats fish birds grooming treats",
             "leash collar bowl litter aquarium brush kibble toy",
             "pet dog cat puppy kitten paws furry companion", 20.0),
    "jewelry": ("rings necklaces earrings bracelets watches silver",
                "ring necklace earrings bracelet watch pendant brooch chain",
                "gold silver diamond gem sparkle gift elegant charm", 90.0),
    "games": ("console pc board cards puzzle strategy",
              "controller boardgame deck console headset dice expansion cartridge",
              "gaming players multiplayer level strategy adventure arcade quest", 40.0),
    "travel": ("luggage backpacks adapters pillows organizers bottles",
               "suitcase backpack adapter pillow pouch tag organizer bottle",
               "trip journey airport carry luggage vacation flight explore", 55.0),
    "baby": ("feeding diapers nursery strollers clothing bath",
             "bottle diapers stroller onesie crib pacifier bib monitor",
             "baby infant newborn nursery soft parents gentle toddler", 30.0),
    "outdoors": ("camping hiking fishing climbing hunting picnic",
                 "tent lantern rod harness cooler compass hammock backpack",
                 "camping trail wilderness hiking adventure nature campfire mountain", 70.0),
}
def _split(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_ADJECTIVES = _split(
    "compact classic premium modern vintage deluxe essential ultra eco lightweight durable elegant "
    "smart pro mini signature everyday limited original natural bold sleek cozy rugged soft bright "
    "handmade advanced simple colorful"
)
_FILLER = _split("quality design value favorite choice collection series edition gift upgrade")
_BRAND_HEADS = _split("nova zen acme terra luma vita orbi kilo pixa sola arco brio")
_BRAND_TAILS = _split("tech ware craft line works gear co labs")
_BRANDS_PER_CATEGORY = 10
_AGE_GROUPS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
_AGE_P = (0.16, 0.27, 0.22, 0.16, 0.11, 0.08)
_GENDERS = ("female", "male", "non-binary", "unknown")
_GENDER_P = (0.48, 0.46, 0.02, 0.04)
_LOCATIONS = ("US", "GB", "DE", "FR", "IN", "BR", "CA", "ES", "IT", "NL", "AU", "JP", "MX", "PL", "SE")
_TIERS = ("free", "basic", "premium")
_TIER_P = (0.7, 0.2, 0.1)
_TIER_ACTIVITY = (1.0, 1.6, 2.5)
_CHANNEL_P = (0.5, 0.38, 0.12)  # web, mobile, email (C.CHANNELS order)
_DEVICES = ("desktop", "tablet", "ios", "android")
_DEVICE_P_BY_CHANNEL = ((0.82, 0.18, 0.0, 0.0), (0.0, 0.0, 0.48, 0.52), (0.5, 0.1, 0.2, 0.2))
#: diurnal activity by hour (UTC), evening peak
_HOURLY = np.array([2, 1, 1, 1, 1, 2, 4, 6, 8, 9, 9, 9, 10, 9, 9, 9, 10, 11, 13, 15, 16, 14, 9, 5], float)
# event-type model over C.INTERACTION_TYPES (view, click, add_to_cart, purchase, like, share, rating)
_TYPE_BASE_NEW = np.array([0.62, 0.22, 0.06, 0.022, 0.025, 0.01, 0.045])
_TYPE_BASE_REPEAT = np.array([0.25, 0.34, 0.2, 0.12, 0.035, 0.015, 0.04])
_TYPE_AFFINITY = np.array([0.0, 0.2, 0.5, 0.8, 0.7, 0.5, 0.0])


@dataclass(frozen=True)
class SyntheticConfig:
    """Sizes and knobs; the defaults give a shop with clear but noisy structure."""

    n_users: int
    n_items: int
    n_interactions: int
    seed: int = 7
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    latent_dim: int = 8
    n_categories: int | None = None  # default: min(20, n_items // 20), at least 1
    n_subcategories: int | None = None  # per category; default: min(6, n_items // (10 * n_categories))
    preference_concentration: float = 3.0  # Dirichlet total: small = users focus on few categories
    popularity_exponent: float = 0.9  # Zipf exponent of item popularity within a subcategory
    candidates: int = 4  # popularity-drawn candidates per pick, the best affinity wins
    affinity_temperature: float = 0.5
    mean_session_events: float = 4.0
    repeat_probability: float = 0.3  # an event revisits the session's current item
    focus_probability: float = 0.7  # a new item comes from the session's focus category

    def validate(self) -> None:
        for name in ("n_users", "n_items", "n_interactions", "chunk_rows", "latent_dim", "candidates"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise DataError(f"{name}: must be a positive integer, got {value!r}")
        if not isinstance(self.seed, (int, np.integer)) or isinstance(self.seed, bool) or self.seed < 0:
            raise DataError(f"seed: must be a non-negative integer, got {self.seed!r}")
        if self.n_categories is not None and not 1 <= self.n_categories <= len(_CATEGORIES):
            raise DataError(f"n_categories: must be 1..{len(_CATEGORIES)}, got {self.n_categories}")
        if self.n_subcategories is not None and not 1 <= self.n_subcategories <= 6:
            raise DataError(f"n_subcategories: must be 1..6, got {self.n_subcategories}")
        if self.n_items < self.categories * self.subcategories:
            raise DataError(
                f"n_items: {self.n_items} is fewer than categories x subcategories "
                f"({self.categories} x {self.subcategories}); every subcategory needs an item"
            )

    @property
    def categories(self) -> int:
        return self.n_categories or int(np.clip(self.n_items // 20, 1, len(_CATEGORIES)))

    @property
    def subcategories(self) -> int:
        return self.n_subcategories or int(np.clip(self.n_items // (10 * self.categories), 1, 6))


# --- schemas (canonical names, order and dtypes) ---------------------------------------------------
_TS = pa.timestamp("ns", tz="UTC")
ITEM_SCHEMA = pa.schema([
    (C.ITEM_ID, pa.string()), (C.TITLE, pa.string()), (C.CATEGORY, pa.string()),
    (C.SUBCATEGORY, pa.string()), (C.BRAND, pa.string()), (C.PRICE, pa.float64()),
    (C.TAGS, pa.list_(pa.string())), (C.DESCRIPTION, pa.string()), (C.CREATED_DATE, _TS),
])
USER_SCHEMA = pa.schema([
    (C.USER_ID, pa.string()), (C.REGISTRATION_DATE, _TS), (C.AGE_GROUP, pa.string()),
    (C.GENDER, pa.string()), (C.LOCATION, pa.string()), (C.SUBSCRIPTION_TIER, pa.string()),
])
INTERACTION_SCHEMA = pa.schema([
    (C.USER_ID, pa.string()), (C.ITEM_ID, pa.string()), (C.INTERACTION_TYPE, pa.string()),
    (C.TIMESTAMP, _TS), (C.INTERACTION_ID, pa.string()), (C.SESSION_ID, pa.string()),
    (C.CHANNEL, pa.string()), (C.DEVICE_TYPE, pa.string()), (C.RATING, pa.float64()),
    (C.DURATION, pa.float64()),
])


def _ids(prefix: str, start: int, values: np.ndarray | None = None, n: int = 0) -> pa.Array:
    """'u17'-style string ids built in Arrow (C++), not in a Python loop."""
    nums = pa.array(values if values is not None else np.arange(start, start + n, dtype=np.int64))
    return pc.binary_join_element_wise(prefix, pc.cast(nums, pa.string()), "")


def _words(vocab: pa.Array, idx: np.ndarray) -> pa.Array:
    return vocab.take(pa.array(np.asarray(idx, dtype=np.int64)))


def _timestamps(ns: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(ns, dtype=np.int64), type=pa.int64()).cast(_TS)


def _floats(values: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(values, dtype=np.float64), from_pandas=True)  # NaN -> null


def _zipf_cdf(n: int, exponent: float) -> np.ndarray:
    w = np.arange(1, n + 1, dtype=np.float64) ** -exponent
    cdf = np.cumsum(w)
    cdf /= cdf[-1]
    cdf[-1] = 1.0
    return cdf


def _zipf_rank(u: np.ndarray, n: np.ndarray, a: float) -> np.ndarray:
    """Inverse CDF of a power law x^-a on [1, n+1], floored to a 0-based rank < n.

    Closed form, so sampling from 10M items needs no cumulative-weight array and no binary search;
    rank r gets weight integral_{r+1}^{r+2} x^-a dx ~ (r + 1.5)^-a (Zipf).
    """
    if abs(a - 1.0) < 1e-9:
        x = np.exp(u * np.log(n + 1.0))
    else:
        b = 1.0 - a
        x = (1.0 + u * ((n + 1.0) ** b - 1.0)) ** (1.0 / b)
    return np.minimum(np.floor(x - 1.0).astype(np.int64), n - 1)


def _gumbel(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return -np.log(-np.log(rng.random(shape, dtype=np.float64).clip(1e-300, 1.0 - 1e-16)))


@dataclass
class _World:
    """Everything the interaction sampler needs, held once in memory (O(items + users) small arrays)."""

    cfg: SyntheticConfig
    category_names: list[str]
    n_sub: int
    item_category: np.ndarray  # int16 (n_items,)
    item_sub: np.ndarray  # int8 (n_items,)
    item_factors: np.ndarray  # float32 (n_items, d)
    centroids: np.ndarray  # float32 (n_categories, n_sub, d)
    sub_log_popularity: np.ndarray  # float32 (n_categories, n_sub)
    cluster_order: np.ndarray  # int32: item indices grouped by cluster, most popular first
    cluster_start: np.ndarray  # int64 (n_clusters,): first position of each cluster in cluster_order
    cluster_size: np.ndarray  # int64 (n_clusters,)
    user_factors: np.ndarray  # float32 (n_users, d)
    user_prefs: np.ndarray  # float32 (n_users, n_categories)
    user_pref_cdf: np.ndarray  # float32 (n_users, n_categories)
    user_activity_cum: np.ndarray  # float64 (n_users,)
    user_registration_ns: np.ndarray  # int64, ascending
    user_age: np.ndarray  # int8
    user_tier: np.ndarray  # int8
    user_channel: np.ndarray  # int8: preferred channel
    affinity_scale: float = 1.0
    meta: dict = field(default_factory=dict)


def _build_world(cfg: SyntheticConfig) -> _World:
    rng = np.random.default_rng([cfg.seed, 0])
    n_cat, n_sub, d = cfg.categories, cfg.subcategories, cfg.latent_dim
    names = list(_CATEGORIES)
    order = rng.permutation(len(names))[:n_cat]
    category_names = [names[i] for i in order]
    # popularity across categories: Zipf over a random category order drives both size and demand
    cat_pop = np.arange(1, n_cat + 1, dtype=np.float64) ** -0.7
    cat_pop /= cat_pop.sum()
    sub_pop = rng.dirichlet(np.full(n_sub, 2.0), size=n_cat)  # (n_cat, n_sub)
    cluster_p = (cat_pop[:, None] * sub_pop).ravel()
    n_clusters = n_cat * n_sub
    # every cluster gets at least one item (validate() ensures enough); the rest follow cluster popularity
    extra = rng.choice(n_clusters, size=cfg.n_items - n_clusters, p=cluster_p)
    cluster = rng.permutation(np.concatenate([np.arange(n_clusters), extra])).astype(np.int32)
    # latent space: centroids per cluster, items around them
    centroids = rng.standard_normal((n_cat, n_sub, d)).astype(np.float32)
    noise = 0.6
    item_factors = centroids.reshape(n_clusters, d)[cluster]
    item_factors += noise * rng.standard_normal(item_factors.shape, dtype=np.float32)
    # within a cluster: items in random order; popularity is a power law of that rank (_zipf_rank)
    tiebreak = rng.permutation(cfg.n_items)
    cluster_order = np.lexsort((tiebreak, cluster)).astype(np.int32)
    counts = np.bincount(cluster, minlength=n_clusters)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    sub_log_pop = np.log(sub_pop).astype(np.float32)

    # users: registration (sorted = user index order), demographics, tastes, activity
    urng = np.random.default_rng([cfg.seed, 1])
    n_u = cfg.n_users
    start_ns = PERIOD_START.value
    before_start = urng.random(n_u) < 0.6
    reg = np.where(
        before_start,
        start_ns - (urng.random(n_u) * 730 * DAY_NS).astype(np.int64),
        start_ns + (urng.random(n_u) * (PERIOD_DAYS - 30) * DAY_NS).astype(np.int64),
    )
    reg = np.sort(reg // NS_PER_S * NS_PER_S)
    reg[0] = min(reg[0], start_ns - DAY_NS)  # someone can always be active at the start
    age = urng.choice(len(_AGE_GROUPS), size=n_u, p=_AGE_P).astype(np.int8)
    tier = urng.choice(len(_TIERS), size=n_u, p=_TIER_P).astype(np.int8)
    age_bias = urng.normal(0.0, 0.6, size=(len(_AGE_GROUPS), n_cat))
    alpha = cat_pop[None, :] * np.exp(age_bias)  # (ages, n_cat)
    alpha = cfg.preference_concentration * alpha / alpha.sum(axis=1, keepdims=True)
    gam = urng.standard_gamma(alpha[age].astype(np.float64)) + 1e-12
    prefs = (gam / gam.sum(axis=1, keepdims=True)).astype(np.float32)
    pref_cdf = np.cumsum(prefs, axis=1, dtype=np.float32)
    pref_cdf[:, -1] = 1.0
    user_factors = (urng.standard_normal((n_u, d), dtype=np.float32) / np.float32(np.sqrt(d)))
    activity = (urng.pareto(2.0, size=n_u) + 1.0) * np.asarray(_TIER_ACTIVITY)[tier]
    user_channel = urng.choice(len(C.CHANNELS), size=n_u, p=_CHANNEL_P).astype(np.int8)
    return _World(
        cfg=cfg, category_names=category_names, n_sub=n_sub,
        item_category=(cluster // n_sub).astype(np.int16), item_sub=(cluster % n_sub).astype(np.int8),
        item_factors=item_factors, centroids=centroids, sub_log_popularity=sub_log_pop,
        cluster_order=cluster_order, cluster_start=starts, cluster_size=counts,
        user_factors=user_factors, user_prefs=prefs, user_pref_cdf=pref_cdf,
        user_activity_cum=np.cumsum(activity), user_registration_ns=reg, user_age=age, user_tier=tier,
        user_channel=user_channel, affinity_scale=float(np.sqrt(1.0 + noise**2)),
        meta={"category_popularity": dict(zip(category_names, cat_pop.tolist(), strict=True))},
    )


# --- items -----------------------------------------------------------------------------------------
class _Vocab:
    """All strings the text columns use, as one Arrow array indexed by int codes."""

    def __init__(self, category_names: list[str]) -> None:
        words: list[str] = []
        index: dict[str, int] = {}

        def code(w: str) -> int:
            if w not in index:
                index[w] = len(words)
                words.append(w)
            return index[w]

        brng = np.random.default_rng(20240101)  # fixed: brand names do not depend on the seed
        brands = [h.capitalize() + t for h in _BRAND_HEADS for t in _BRAND_TAILS]
        self.cat = np.array([code(c) for c in category_names])
        self.sub = np.array([[code(s) for s in _CATEGORIES[c][0].split()] for c in category_names])
        self.noun = np.array([[code(s) for s in _CATEGORIES[c][1].split()] for c in category_names])
        self.word = np.array([[code(s) for s in _CATEGORIES[c][2].split()] for c in category_names])
        self.brand = np.array(
            [[code(b) for b in brng.choice(brands, _BRANDS_PER_CATEGORY, replace=False)]
             for _ in category_names]
        )
        self.price = np.array([_CATEGORIES[c][3] for c in category_names])
        self.adj = np.array([code(a) for a in _ADJECTIVES])
        self.filler = np.array([code(f) for f in _FILLER])
        self.vocab = pa.array(words, pa.string())


def _item_chunk(world: _World, vocab: _Vocab, lo: int, hi: int, rng: np.random.Generator) -> pa.Table:
    n = hi - lo
    cat = world.item_category[lo:hi].astype(np.int64)
    sub = world.item_sub[lo:hi].astype(np.int64)
    n_noun, n_word = vocab.noun.shape[1], vocab.word.shape[1]
    noun = vocab.noun[cat, rng.integers(0, n_noun, n)]
    adj = vocab.adj[rng.integers(0, len(vocab.adj), n)]
    adj2 = vocab.adj[rng.integers(0, len(vocab.adj), n)]
    # three distinct category words: a start and two strides that cannot wrap onto each other
    w0 = rng.integers(0, n_word, n)
    w1 = w0 + rng.integers(1, n_word // 2, n)
    w2 = w1 + rng.integers(1, n_word // 2, n)
    w = vocab.word[cat[:, None], np.stack([w0, w1, w2], axis=1) % n_word]
    filler = vocab.filler[rng.integers(0, len(vocab.filler), n)]
    brand_rank = np.searchsorted(_zipf_cdf(_BRANDS_PER_CATEGORY, 1.1), rng.random(n), side="right")
    brand = vocab.brand[cat, np.minimum(brand_rank, _BRANDS_PER_CATEGORY - 1)]
    V = vocab.vocab
    model_no = pc.cast(pa.array(rng.integers(100, 1000, n)), pa.string())
    title = pc.utf8_title(pc.binary_join_element_wise(_words(V, adj), _words(V, noun), model_no, " "))
    description = pc.binary_join_element_wise(
        "A", _words(V, adj2), _words(V, noun), "for", _words(V, vocab.sub[cat, sub]), "fans from",
        pc.binary_join_element_wise(_words(V, brand), ".", ""), "Made for",
        pc.binary_join_element_wise(_words(V, w[:, 0]), ",", ""), _words(V, w[:, 1]), "and",
        _words(V, w[:, 2]), _words(V, filler), "in",
        pc.binary_join_element_wise(_words(V, vocab.cat[cat]), ".", ""),
        " ",
    )
    # tags: category, subcategory, then 0-2 of (a category word, the adjective)
    n_tags = 2 + rng.integers(0, 3, n)
    tag_codes = np.stack([vocab.cat[cat], vocab.sub[cat, sub], w[:, 0], adj], axis=1)
    flat = tag_codes[np.arange(4)[None, :] < n_tags[:, None]]
    offsets = np.concatenate([[0], np.cumsum(n_tags)]).astype(np.int32)
    tags = pa.ListArray.from_arrays(pa.array(offsets), _words(V, flat))
    price = np.round(vocab.price[cat] * rng.lognormal(0.0, 0.6, n), 0) - 0.01
    price = np.maximum(price, 0.99)
    created = PERIOD_START.value - (rng.random(n) * 3 * 365 * DAY_NS).astype(np.int64)
    created = created // NS_PER_S * NS_PER_S
    return pa.Table.from_arrays(
        [_ids("i", lo, n=n), title, _words(V, vocab.cat[cat]), _words(V, vocab.sub[cat, sub]),
         _words(V, brand), _floats(price), tags, description, _timestamps(created)],
        schema=ITEM_SCHEMA,
    )


def _user_chunk(world: _World, lo: int, hi: int, rng: np.random.Generator) -> pa.Table:
    n = hi - lo
    loc_rank = np.searchsorted(_zipf_cdf(len(_LOCATIONS), 1.0), rng.random(n), side="right")
    strings = lambda values, idx: pa.array(np.asarray(values, dtype=object)[idx], pa.string())  # noqa: E731
    return pa.Table.from_arrays(
        [_ids("u", lo, n=n), _timestamps(world.user_registration_ns[lo:hi]),
         strings(_AGE_GROUPS, world.user_age[lo:hi]),
         strings(_GENDERS, rng.choice(len(_GENDERS), size=n, p=_GENDER_P)),
         strings(_LOCATIONS, np.minimum(loc_rank, len(_LOCATIONS) - 1)),
         strings(_TIERS, world.user_tier[lo:hi])],
        schema=USER_SCHEMA,
    )


# --- interactions ----------------------------------------------------------------------------------
def _pick_items(world: _World, users: np.ndarray, cats: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Subcategory by user x centroid softmax, then the best of K popularity draws by affinity."""
    cfg = world.cfg
    uf = world.user_factors[users]  # (m, d)
    sub_logit = np.einsum("md,msd->ms", uf, world.centroids[cats]) + world.sub_log_popularity[cats]
    sub = np.argmax(sub_logit + _gumbel(rng, sub_logit.shape).astype(np.float32), axis=1)
    clusters = cats * world.n_sub + sub
    size = world.cluster_size[clusters][:, None]
    rank = _zipf_rank(rng.random((len(users), cfg.candidates)), size, cfg.popularity_exponent)
    cand = world.cluster_order[world.cluster_start[clusters][:, None] + rank]  # (m, K)
    aff = np.einsum("md,mkd->mk", uf, world.item_factors[cand]) / world.affinity_scale
    best = np.argmax(aff / cfg.affinity_temperature + _gumbel(rng, aff.shape), axis=1)
    return cand[np.arange(len(users)), best]


def _session_starts(rng: np.random.Generator, n: int, lo_ns: int, hi_ns: int) -> np.ndarray:
    """``n`` start times in [lo, hi) with a diurnal profile (thinning)."""
    accept_p = _HOURLY / _HOURLY.max()
    out: list[np.ndarray] = []
    have = 0
    while have < n:
        m = int((n - have) * 1.9) + 16
        t = lo_ns + (rng.random(m) * (hi_ns - lo_ns)).astype(np.int64)
        hour = (t // (3600 * NS_PER_S)) % 24
        keep = t[rng.random(m) < accept_p[hour]]
        out.append(keep)
        have += len(keep)
    return np.concatenate(out)[:n] // NS_PER_S * NS_PER_S


def _interaction_chunk(
    world: _World, n: int, lo_ns: int, hi_ns: int, first_event: int, first_session: int,
    rng: np.random.Generator,
) -> tuple[pa.Table, int]:
    cfg = world.cfg
    # sessions: lengths until n events, last one truncated
    lengths: list[np.ndarray] = []
    total = 0
    while total < n:
        more = rng.geometric(1.0 / cfg.mean_session_events, int((n - total) / cfg.mean_session_events) + 8)
        lengths.append(np.minimum(more, 60))
        total += int(lengths[-1].sum())
    length = np.concatenate(lengths)
    cum = np.cumsum(length)
    n_sess = int(np.searchsorted(cum, n)) + 1
    length = length[:n_sess]
    length[-1] -= cum[n_sess - 1] - n
    start = _session_starts(rng, n_sess, lo_ns, hi_ns)
    # who: by activity among users registered by the session start
    n_reg = np.maximum(np.searchsorted(world.user_registration_ns, start, side="right"), 1)
    target = rng.random(n_sess) * world.user_activity_cum[n_reg - 1]
    s_user = np.minimum(np.searchsorted(world.user_activity_cum, target, side="right"), n_reg - 1)
    s_channel = np.where(
        rng.random(n_sess) < 0.6, world.user_channel[s_user],
        rng.choice(len(C.CHANNELS), size=n_sess, p=_CHANNEL_P),
    ).astype(np.int64)
    dev_cdf = np.cumsum(np.asarray(_DEVICE_P_BY_CHANNEL), axis=1)
    dev_cdf[:, -1] = 1.0
    s_device = (dev_cdf[s_channel] < rng.random(n_sess)[:, None]).sum(axis=1)
    s_focus = (world.user_pref_cdf[s_user] < rng.random(n_sess, dtype=np.float32)[:, None]).sum(axis=1)

    # events
    sess = np.repeat(np.arange(n_sess), length)
    first = np.concatenate([[0], np.cumsum(length)[:-1]])
    pos_in = np.arange(n) - first[sess]
    gaps = rng.exponential(45.0, n)
    gaps[pos_in == 0] = 0.0
    gap_cum = np.cumsum(gaps)
    offset_s = gap_cum - gap_cum[first][sess]
    ts = start[sess] + (offset_s * NS_PER_S).astype(np.int64) // NS_PER_S * NS_PER_S
    user = s_user[sess]
    is_new = (pos_in == 0) | (rng.random(n) >= cfg.repeat_probability)
    new_idx = np.flatnonzero(is_new)
    nu = user[new_idx]
    fresh = (world.user_pref_cdf[nu] < rng.random(len(nu), dtype=np.float32)[:, None]).sum(axis=1)
    cats = np.where(rng.random(len(nu)) < cfg.focus_probability, s_focus[sess[new_idx]], fresh)
    item = np.zeros(n, dtype=np.int64)
    item[new_idx] = _pick_items(world, nu, cats.astype(np.int64), rng)
    last_new = np.maximum.accumulate(np.where(is_new, np.arange(n), 0))
    item = item[last_new]  # a revisit repeats the session's current item (funnel: view -> cart -> buy)
    aff = np.einsum("nd,nd->n", world.user_factors[user], world.item_factors[item]) / world.affinity_scale
    base = np.log(np.where(is_new[:, None], _TYPE_BASE_NEW, _TYPE_BASE_REPEAT))
    logits = base + aff[:, None] * _TYPE_AFFINITY[None, :]
    etype = np.argmax(logits + _gumbel(rng, logits.shape), axis=1)
    rating_code = C.INTERACTION_TYPES.index("rating")
    stars = np.clip(np.round((3.3 + 0.9 * aff + rng.normal(0.0, 0.7, n)) * 2) / 2, 0.5, 5.0)
    rating = np.where(etype == rating_code, stars, np.nan)
    dwell_types = np.isin(etype, [C.INTERACTION_TYPES.index(t) for t in ("view", "click", "rating")])
    dwell = np.round(rng.lognormal(np.log(30.0) + 0.3 * aff, 0.8), 1)
    duration = np.where(dwell_types, dwell, np.nan)

    order = np.argsort(ts, kind="stable")
    types = pa.array(np.asarray(C.INTERACTION_TYPES, dtype=object)[etype[order]], pa.string())
    channels = pa.array(np.asarray(C.CHANNELS, dtype=object)[s_channel[sess[order]]], pa.string())
    devices = pa.array(np.asarray(_DEVICES, dtype=object)[s_device[sess[order]]], pa.string())
    table = pa.Table.from_arrays(
        [_ids("u", 0, values=user[order]), _ids("i", 0, values=item[order]), types, _timestamps(ts[order]),
         _ids("e", first_event, n=n), _ids("s", 0, values=first_session + sess[order]), channels, devices,
         _floats(rating[order]), _floats(duration[order])],
        schema=INTERACTION_SCHEMA,
    )
    return table, n_sess


# --- drivers ---------------------------------------------------------------------------------------
def _spans(total: int, chunk: int) -> list[tuple[int, int]]:
    return [(lo, min(lo + chunk, total)) for lo in range(0, total, chunk)]


def _iter_tables(
    world: _World, stage: str, progress: bool,
) -> Iterator[pa.Table]:
    """Yield one stage's parts in order; each part has its own RNG stream [seed, stage, part]."""
    cfg = world.cfg
    seed = cfg.seed
    if stage == "items":
        vocab = _Vocab(world.category_names)
        spans = _spans(cfg.n_items, cfg.chunk_rows)
        make: Callable[[int, int, int], pa.Table] = lambda k, lo, hi: _item_chunk(  # noqa: E731
            world, vocab, lo, hi, np.random.default_rng([seed, 2, k]))
    elif stage == "users":
        spans = _spans(cfg.n_users, cfg.chunk_rows)
        make = lambda k, lo, hi: _user_chunk(world, lo, hi, np.random.default_rng([seed, 3, k]))  # noqa: E731
    else:
        spans = _spans(cfg.n_interactions, cfg.chunk_rows)
        period = PERIOD_DAYS * DAY_NS
        state = {"sessions": 0}

        def make(k: int, lo: int, hi: int) -> pa.Table:
            # each part covers its share of the period, so parts are (nearly) in time order
            t0 = PERIOD_START.value + period * lo // cfg.n_interactions
            t1 = PERIOD_START.value + period * hi // cfg.n_interactions
            table, n_sess = _interaction_chunk(
                world, hi - lo, t0, t1, lo, state["sessions"], np.random.default_rng([seed, 4, k]))
            state["sessions"] += n_sess
            return table

    total = spans[-1][1] if spans else 0
    bar = tqdm(total=total, desc=f"generate {stage}", unit="row", unit_scale=True, disable=not progress)
    with bar:
        for k, (lo, hi) in enumerate(spans):
            yield make(k, lo, hi)
            bar.update(hi - lo)


def _config(n_users: int, n_items: int, n_interactions: int, seed: int, **kwargs: object) -> SyntheticConfig:
    cfg = SyntheticConfig(
        n_users=n_users, n_items=n_items, n_interactions=n_interactions, seed=seed, **kwargs  # type: ignore[arg-type]
    )
    cfg.validate()
    return cfg


def ground_truth(world: _World) -> dict:
    """The tastes that generated the data; rows follow the users/items tables' order (u0, u1, ...)."""
    return {
        **world.meta,
        "categories": list(world.category_names),
        "user_factors": world.user_factors,
        "item_factors": world.item_factors,
        "user_category_prefs": world.user_prefs,
        "item_category_index": world.item_category,
        "subcategory_centroids": world.centroids,
        "config": world.cfg.__dict__.copy(),
    }


def generate_in_memory(
    n_users: int, n_items: int, n_interactions: int, seed: int = 7, **kwargs: object,
) -> CanonicalData:
    """Small/medium sizes as canonical frames; ``meta`` holds the ground-truth tastes.

    Same sizes, seed and chunk_rows as :func:`generate_to_parquet` give the same rows.
    """
    cfg = _config(n_users, n_items, n_interactions, seed, **kwargs)
    world = _build_world(cfg)
    frames = {
        stage: pa.concat_tables(list(_iter_tables(world, stage, progress=False))).to_pandas()
        for stage in ("items", "users", "interactions")
    }
    data = canonicalize(frames["interactions"], frames["items"], frames["users"], source="synthetic")
    data.meta.update(ground_truth(world))
    return data


def generate_to_parquet(
    out_dir: Path | str,
    n_users: int,
    n_items: int,
    n_interactions: int,
    seed: int = 7,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    *,
    overwrite: bool = False,
    progress: bool = True,
    compression: str = "zstd",
    **kwargs: object,
) -> dict:
    """Stream items, users and interactions to ``out_dir/<table>/part-NNNNN.parquet`` + manifest.json.

    Memory is O(items + users) for the world arrays plus one part at a time. Returns the manifest
    (with per-stage seconds added, which are not written, so the files stay byte-identical).
    """
    cfg = _config(n_users, n_items, n_interactions, seed, chunk_rows=chunk_rows, **kwargs)
    out = Path(out_dir)
    tables = ("items", "users", "interactions")
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder")
    if out.exists() and any((out / t).exists() for t in (*tables, "manifest.json")):
        if not overwrite:
            raise DataError(f"{out}: already holds a dataset (pass overwrite / --overwrite to replace it)")
        for t in tables:
            shutil.rmtree(out / t, ignore_errors=True)
        (out / "manifest.json").unlink(missing_ok=True)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    world = _build_world(cfg)
    seconds["world"] = time.perf_counter() - t0
    manifest: dict = {
        "generator": "smartreco.data.synthetic",
        "format": "parquet",
        "seed": cfg.seed,
        "sizes": {"users": cfg.n_users, "items": cfg.n_items, "interactions": cfg.n_interactions},
        "config": cfg.__dict__.copy(),
        "categories": world.category_names,
        "period": {"start": PERIOD_START.isoformat(),
                   "end": (PERIOD_START + pd.Timedelta(days=PERIOD_DAYS)).isoformat()},
        "tables": {},
    }
    for name in tables:
        t0 = time.perf_counter()
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        rows, parts, size = 0, [], 0
        for k, table in enumerate(_iter_tables(world, name, progress)):
            path = folder / f"part-{k:05d}.parquet"
            pq.write_table(table, path, compression=compression)
            rows += table.num_rows
            size += path.stat().st_size
            parts.append(path.name)
            del table
        manifest["tables"][name] = {"rows": rows, "parts": parts, "bytes": size}
        seconds[name] = time.perf_counter() - t0
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return {**manifest, "seconds": seconds}
