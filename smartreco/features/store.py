"""The Feast feature store of a run: render the repo, apply, materialize, read online, push.

``prepare_repo`` copies ``feature_repo/definitions.py`` into a run folder (default
``<runs>/feast``) and writes a ``feature_store.yaml`` with ABSOLUTE registry / online-store paths
(relative sqlite paths resolve against the current directory: STACK_NOTES), pinned to the parquet
folder the features step wrote. ``feast apply`` / ``feast materialize-incremental`` then work from
the CLI in that folder too. Feast is imported lazily (pipeline env only).
"""

from __future__ import annotations

import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import yaml

from smartreco.data import columns as C
from smartreco.errors import DataError
from smartreco.features._frame import EVENT_TIMESTAMP
from smartreco.features.build import TABLES
from smartreco.features.history import HISTORY_LAST_TS, HISTORY_LENGTH, RECENT_ITEMS
from smartreco.paths import project_root, runs_dir

PUSH_SOURCE = "interactions_push"
USER_VIEWS = ("user_stats", "user_recent_history")
ITEM_VIEWS = ("item_stats", "item_embeddings")


def default_store_dir() -> Path:
    return runs_dir() / "feast"


def prepare_repo(
    feature_dir: Path | str,
    store_dir: Path | str | None = None,
    *,
    online: str = "sqlite",
    redis_url: str = "localhost:6379",
) -> Path:
    """Render a runnable Feast repo for ``feature_dir``'s parquet tables; returns the repo folder."""
    feature_dir = Path(feature_dir).resolve()
    missing = [t for t in TABLES if not (feature_dir / f"{t}.parquet").exists()]
    if missing:
        raise DataError(f"{feature_dir}: feature table(s) missing: {', '.join(missing)} (run build_features first)")
    repo = Path(store_dir or default_store_dir()).resolve()
    repo.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(project_root() / "feature_repo" / "definitions.py", repo / "definitions.py")
    (repo / "feature_data.txt").write_text(str(feature_dir) + "\n")
    if online == "sqlite":
        online_cfg = {"type": "sqlite", "path": str(repo / "online_store.db")}
    elif online == "redis":
        online_cfg = {"type": "redis", "connection_string": redis_url}
    else:
        raise DataError(f"online store {online!r}: use sqlite or redis")
    config = {
        "project": "smartreco",
        "provider": "local",
        "registry": str(repo / "registry.db"),
        "online_store": online_cfg,
        "offline_store": {"type": "duckdb"},
        "entity_key_serialization_version": 3,
    }
    (repo / "feature_store.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return repo


def get_store(repo: Path | str):
    from feast import FeatureStore

    return FeatureStore(repo_path=str(repo))


def apply_repo(repo: Path | str) -> None:
    """What ``feast apply`` does, in-process."""
    from feast.repo_config import load_repo_config
    from feast.repo_operations import apply_total

    repo = Path(repo).resolve()
    sys.modules.pop("definitions", None)  # another run's repo may have been applied in this process
    sys.path.insert(0, str(repo))  # feast imports repo modules by name, as its CLI does from the repo dir
    try:
        apply_total(load_repo_config(repo, repo / "feature_store.yaml"), repo, skip_source_validation=True)
    finally:
        sys.path.remove(str(repo))


def materialize(repo: Path | str, end: datetime | None = None) -> None:
    """``feast materialize-incremental`` up to ``end`` (default now)."""
    get_store(repo).materialize_incremental(end_date=end or datetime.now(UTC))


def online_user_features(store, user_ids: list[str]) -> pd.DataFrame:
    return store.get_online_features(
        features=store.get_feature_service("serving_user_v1"),
        entity_rows=[{C.USER_ID: str(u)} for u in user_ids],
    ).to_df()


def online_item_features(store, item_ids: list[str]) -> pd.DataFrame:
    return store.get_online_features(
        features=store.get_feature_service("serving_item_v1"),
        entity_rows=[{C.ITEM_ID: str(i)} for i in item_ids],
    ).to_df()


def next_history_row(
    current: list[str] | None, user_id: str, item_id: str, timestamp: pd.Timestamp, n: int = HISTORY_LENGTH
) -> dict:
    """The user_recent_history row after one new interaction (newest first, length <= n)."""
    items = [str(item_id), *[str(i) for i in (current or [])]][:n]
    ts = pd.Timestamp(timestamp)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return {
        C.USER_ID: str(user_id),
        EVENT_TIMESTAMP: ts,
        RECENT_ITEMS: items,
        "history_length": len(items),
        HISTORY_LAST_TS: int(ts.timestamp()),
    }


def push_interaction(
    store, user_id: str, item_id: str, timestamp: pd.Timestamp | None = None, *, to_offline: bool = True
) -> list[str]:
    """Prepend an interaction to the user's online recent history via the push source; returns it."""
    from feast.data_source import PushMode

    current = store.get_online_features(
        features=["user_recent_history:recent_items"], entity_rows=[{C.USER_ID: str(user_id)}]
    ).to_dict()
    row = next_history_row(
        current[RECENT_ITEMS][0], user_id, item_id, timestamp if timestamp is not None else pd.Timestamp.now(tz="UTC")
    )
    store.push(PUSH_SOURCE, pd.DataFrame([row]), to=PushMode.ONLINE_AND_OFFLINE if to_offline else PushMode.ONLINE)
    return row[RECENT_ITEMS]
