"""SmartReco Feast definitions: entities, sources, feature views, push source, feature services.

Offline sources are the parquet tables written by ``smartreco.features.build`` in
``$SMARTRECO_FEATURE_DATA`` (default ``<runs>/features``), resolved to an absolute path at import.
All views use a 100-year TTL: features are point-in-time rows (see ``smartreco/features/_frame.py``)
that stay valid until replaced, and it lets ``feast materialize-incremental`` start before old data
such as MovieLens (Feast otherwise starts one TTL, or one year, before now).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, ValueType
from feast.types import Array, Float32, Float64, Int64, String

_PINNED = Path(__file__).resolve().parent / "feature_data.txt"  # written by prepare_repo() in a run folder
FEATURE_DATA = Path(
    _PINNED.read_text().strip()
    if _PINNED.exists()
    else os.environ.get("SMARTRECO_FEATURE_DATA")
    or Path(os.environ.get("SMARTRECO_RUNS") or Path(__file__).resolve().parent.parent / "runs") / "features"
).resolve()
TTL = timedelta(days=36500)
TS = "event_timestamp"

user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.STRING, description="a shopper / viewer")
item = Entity(name="item", join_keys=["item_id"], value_type=ValueType.STRING, description="a catalogue item")


def _source(table: str) -> FileSource:
    return FileSource(name=f"{table}_source", path=str(FEATURE_DATA / f"{table}.parquet"), timestamp_field=TS)


user_stats = FeatureView(
    name="user_stats",
    entities=[user],
    ttl=TTL,
    source=_source("user_stats"),
    online=True,
    schema=[
        Field(name="interaction_count", dtype=Int64),
        *[
            Field(name=f"n_{t}", dtype=Int64)
            for t in ("view", "click", "add_to_cart", "purchase", "like", "share", "rating")
        ],
        Field(name="rating_count", dtype=Int64),
        Field(name="avg_rating", dtype=Float64),
        Field(name="positive_count", dtype=Int64),
        Field(name="monetary", dtype=Float64),
        Field(name="category_entropy", dtype=Float64),
        Field(name="n_categories", dtype=Int64),
        Field(name="n_sessions", dtype=Int64),
        Field(name="avg_session_events", dtype=Float64),
        Field(name="avg_session_seconds", dtype=Float64),
        Field(name="preferred_channel", dtype=String),
        Field(name="preferred_device", dtype=String),
        Field(name="first_interaction_ts", dtype=Int64),
        Field(name="last_interaction_ts", dtype=Int64),
        Field(name="tenure_days", dtype=Float64),
    ],
)

item_stats = FeatureView(
    name="item_stats",
    entities=[item],
    ttl=TTL,
    source=_source("item_stats"),
    online=True,
    schema=[
        Field(name="interaction_count", dtype=Int64),
        Field(name="unique_users", dtype=Int64),
        Field(name="rating_count", dtype=Int64),
        Field(name="avg_rating", dtype=Float64),
        Field(name="popularity_decayed", dtype=Float64),
        Field(name="category_relative_popularity", dtype=Float64),
        Field(name="quality_score", dtype=Float64),
        Field(name="first_interaction_ts", dtype=Int64),
        Field(name="last_interaction_ts", dtype=Int64),
        Field(name="days_active", dtype=Float64),
    ],
)

item_embeddings = FeatureView(
    name="item_embeddings",
    entities=[item],
    ttl=TTL,
    source=_source("item_embeddings"),
    online=True,
    schema=[Field(name="embedding", dtype=Array(Float32))],
)

#: Real-time interactions: the feedback path pushes a user's new recent-history row here.
interactions_push = PushSource(name="interactions_push", batch_source=_source("user_history"))

user_recent_history = FeatureView(
    name="user_recent_history",
    entities=[user],
    ttl=TTL,
    source=interactions_push,
    online=True,
    schema=[
        Field(name="recent_items", dtype=Array(String)),
        Field(name="history_length", dtype=Int64),
        Field(name="history_last_ts", dtype=Int64),
    ],
)

training = FeatureService(
    name="training_v1",
    features=[user_stats, item_stats, user_recent_history],
    description="point-in-time features for ranker training (get_historical_features)",
)
serving_user = FeatureService(
    name="serving_user_v1",
    features=[user_stats, user_recent_history],
    description="user features + recent history read by the feature-transformer node",
)
serving_item = FeatureService(
    name="serving_item_v1",
    features=[item_stats, item_embeddings],
    description="item stats and text embeddings for candidate scoring",
)
