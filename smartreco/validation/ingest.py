"""The ingest step's library side: source -> folder of parquet tables (raw for folders, so that
validation, not the loader, reports bad rows)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from smartreco.data import columns as C
from smartreco.validation.result import load_raw


def ingest_tables(source: str, out: Path, *, sample_users: int = 0, seed: int = 7) -> dict[str, int]:
    tables = load_raw(source)
    if sample_users > 0:
        tables = _sample(tables, sample_users, seed)
    out.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        df.to_parquet(out / f"{name}.parquet", index=False)
    return {name: len(df) for name, df in tables.items()}


def _sample(tables: dict[str, pd.DataFrame], n_users: int, seed: int) -> dict[str, pd.DataFrame]:
    inter = tables["interactions"]
    users = pd.Series(inter[C.USER_ID].dropna().unique())
    if n_users >= len(users):
        return tables
    keep = set(users.sample(n=n_users, random_state=seed))
    out = dict(tables)
    out["interactions"] = inter[inter[C.USER_ID].isin(keep)].reset_index(drop=True)
    out["items"] = tables["items"][tables["items"][C.ITEM_ID].isin(out["interactions"][C.ITEM_ID])].reset_index(
        drop=True
    )
    if "users" in tables:
        out["users"] = tables["users"][tables["users"][C.USER_ID].isin(keep)].reset_index(drop=True)
    return out
