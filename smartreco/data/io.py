"""Reading and writing canonical folders: `interactions`, `items`, optional `users` as CSV or parquet
(a single file or a folder of parquet partitions)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from smartreco.data.canonical import CanonicalData, canonicalize
from smartreco.errors import DataError

TABLES = ("interactions", "items", "users")


def _find_table(folder: Path, name: str) -> Path | None:
    for candidate in (folder / f"{name}.parquet", folder / name, folder / f"{name}.csv"):
        if candidate.exists():
            return candidate
    return None


def read_table(path: Path) -> pd.DataFrame:
    try:
        if path.is_dir() or path.suffix == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, dtype={"user_id": str, "item_id": str, "interaction_id": str, "session_id": str})
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parser failure becomes one readable line
        raise DataError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from None


def load_folder(folder: Path | str, *, check_references: bool = True) -> CanonicalData:
    """Load a canonical folder; a missing table, column or bad value raises DataError naming it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder with canonical interactions/items tables")
    found = {name: _find_table(folder, name) for name in TABLES}
    for name in ("interactions", "items"):
        if found[name] is None:
            raise DataError(f"{folder}: no {name}.csv, {name}.parquet or {name}/ found")
    frames = {name: read_table(p) if p is not None else None for name, p in found.items()}
    return canonicalize(
        frames["interactions"], frames["items"], frames["users"], source=str(folder), check_references=check_references
    )


def write_folder(data: CanonicalData, folder: Path | str, fmt: str = "parquet") -> Path:
    """Write the three tables; parquet keeps dtypes (tags lists, UTC timestamps) exactly."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in TABLES:
        df = getattr(data, name)
        if fmt == "parquet":
            df.to_parquet(folder / f"{name}.parquet", index=False)
        elif fmt == "csv":
            out = df.copy()
            if "tags" in out:
                out["tags"] = out["tags"].map("|".join)
            out.to_csv(folder / f"{name}.csv", index=False)
        else:
            raise DataError(f"unknown format {fmt!r} (use parquet or csv)")
    return folder
