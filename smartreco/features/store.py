"""The Feast feature store of a run: render the repo, apply, materialize, read online, push.

``prepare_repo`` copies ``feature_repo/definitions.py`` into a run folder (default
``<runs>/feast``) and writes a ``feature_store.yaml`` with ABSOLUTE registry / online-store paths
(relative sqlite paths resolve against the current directory: STACK_NOTES), pinned to the parquet
folder the features step wrote. ``feast apply`` / ``feast materialize-incremental`` then work from
the CLI in that folder too. Feast is imported lazily (pipeline env only).

Memory: materialization pulls only each entity's latest row (``pull_latest_features``: the online store
keeps one row per entity anyway) and converts/writes it in batches of ``online_write_batch_size`` rows
(Feast 0.67 otherwise turns the whole pull into Python protobufs at once: 14 GB at 1M users).

Reads: ``online_user_features`` / ``online_item_features`` take the feature service from the registry
cache. ``FeatureStore.get_feature_service`` defaults to ``allow_cache=False``, which re-reads the registry
file on every call and so also drops Feast's per-request feature-resolution cache, and even from the cache
the object is rebuilt from protobuf on each call (~18 ms a lookup in all; see ``_service``).
"""

from __future__ import annotations

import shutil
import sys
import weakref
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import yaml

from smartreco import settings
from smartreco.data import columns as C
from smartreco.errors import DataError
from smartreco.features._frame import EVENT_TIMESTAMP
from smartreco.features.build import TABLES
from smartreco.features.history import HISTORY_LAST_TS, HISTORY_LENGTH, RECENT_ITEMS
from smartreco.paths import project_root, runs_dir

PUSH_SOURCE = "interactions_push"
USER_VIEWS = ("user_stats", "user_recent_history")
ITEM_VIEWS = ("item_stats", "item_embeddings")
USER_SERVICE, ITEM_SERVICE = "serving_user_v1", "serving_item_v1"
#: rows converted to protobufs and written per batch during materialization (bounds memory)
ONLINE_WRITE_BATCH = 10_000
#: file in ``$SMARTRECO_SERVICES_DIR`` where ``scripts/services.sh start`` writes the URL of the Redis it started
REDIS_URL_FILE_NAME = "redis.url"
DEFAULT_REDIS_PORT = 6390


def default_redis_url() -> str:
    """``$SMARTRECO_REDIS_URL``, else the URL ``scripts/services.sh start`` recorded, else 127.0.0.1:6390."""
    env = settings.REDIS_URL.get()
    if env:
        return env.strip()
    state = settings.SERVICES_DIR.get() / REDIS_URL_FILE_NAME
    if state.exists() and state.read_text().strip():
        return state.read_text().strip()
    return f"127.0.0.1:{DEFAULT_REDIS_PORT}"


def redis_problem(url: str | None = None) -> str | None:
    """None when a Redis answers PING at ``url`` (default :func:`default_redis_url`), else why not."""
    import socket

    url = url or default_redis_url()
    host, _, port = url.split(",")[0].partition(":")
    try:
        with socket.create_connection((host, int(port or 6379)), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
    except (OSError, ValueError) as exc:
        return f"no Redis answers at {url} ({exc})"
    return None if reply.startswith(b"+PONG") else f"Redis at {url} answered {reply[:40]!r} to PING"


def default_store_dir() -> Path:
    return runs_dir() / "feast"


def prepare_repo(
    feature_dir: Path | str,
    store_dir: Path | str | None = None,
    *,
    online: str = "sqlite",
    redis_url: str | None = None,
    online_write_batch_size: int = ONLINE_WRITE_BATCH,
    project: str = "smartreco",
) -> Path:
    """Render a runnable Feast repo for ``feature_dir``'s parquet tables; returns the repo folder.

    ``project`` namespaces the online store's keys: runs sharing one Redis keep apart by project."""
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
        online_cfg = {"type": "redis", "connection_string": redis_url or default_redis_url()}
    else:
        raise DataError(f"online store {online!r}: use sqlite or redis")
    config = {
        "project": project,
        "provider": "local",
        "registry": str(repo / "registry.db"),
        "online_store": online_cfg,
        "offline_store": {"type": "duckdb"},
        "entity_key_serialization_version": 3,
        "materialization": {"pull_latest_features": True, "online_write_batch_size": int(online_write_batch_size)},
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


_SERVICES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _service(store, name: str):
    """The FeatureService object, kept per store until the registry cache refreshes: rebuilding it from
    the registry proto costs ~8 ms a call (Feast type-checks every Field with typeguard)."""
    version = getattr(store.registry, "cached_registry_proto_created", None)
    cached = _SERVICES.setdefault(store, {})
    hit = cached.get(name)
    if hit is None or hit[0] != version or version is None:
        hit = cached[name] = (version, store.get_feature_service(name, allow_cache=True))
    return hit[1]


def _read_users(store, user_ids: list[str]):
    return store.get_online_features(
        features=_service(store, USER_SERVICE), entity_rows=[{C.USER_ID: str(u)} for u in user_ids]
    )


def online_user_features(store, user_ids: list[str]) -> pd.DataFrame:
    return _read_users(store, user_ids).to_df()


def online_user_dict(store, user_ids: list[str]) -> dict[str, list]:
    """Column name -> list of values: no pandas, ~0.7 ms cheaper a call than the DataFrame."""
    return _read_users(store, user_ids).to_dict()


def online_item_features(store, item_ids: list[str]) -> pd.DataFrame:
    return store.get_online_features(
        features=_service(store, ITEM_SERVICE), entity_rows=[{C.ITEM_ID: str(i)} for i in item_ids]
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
