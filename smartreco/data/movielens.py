"""MovieLens ml-latest-small -> canonical tables, with the bundled files' checksums verified on load."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from smartreco.data import columns as C
from smartreco.data.canonical import CanonicalData, canonicalize
from smartreco.errors import ChecksumError, DataError
from smartreco.paths import project_root

NO_GENRE = "(no genres listed)"


def bundled_movielens_dir() -> Path:
    """The copy shipped in the repo (data/ml-latest-small) or inside an image (under SMARTRECO_HOME)."""
    return project_root() / "data" / "ml-latest-small"


def verify_checksums(directory: Path) -> None:
    """Compare every file listed in SHA256SUMS with its digest; a mismatch or missing file is fatal."""
    sums = directory / "SHA256SUMS"
    if not sums.exists():
        raise ChecksumError(f"{sums}: checksum manifest missing")
    for line in sums.read_text().splitlines():
        if not line.strip():
            continue
        digest, name = line.split(maxsplit=1)
        path = directory / name.strip().lstrip("*")
        if not path.exists():
            raise ChecksumError(f"{path}: listed in SHA256SUMS but missing")
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        if actual != digest:
            raise ChecksumError(f"{path}: SHA-256 mismatch (expected {digest[:12]}..., got {actual[:12]}...)")


def _year_from_title(titles: pd.Series) -> pd.Series:
    years = titles.str.extract(r"\((\d{4})\)\s*$", expand=False)
    return pd.to_datetime(years, format="%Y", errors="coerce", utc=True)


def load_movielens(directory: Path | str | None = None, *, verify: bool = True) -> CanonicalData:
    """Map ratings -> interactions (type=rating), genres -> category/subcategory/tags, user tags ->
    tags and description, the year in the title -> created_date; sessions by a 30-minute gap."""
    directory = Path(directory) if directory else bundled_movielens_dir()
    if not (directory / "ratings.csv").exists():
        raise DataError(f"{directory}: not a MovieLens folder (ratings.csv missing)")
    if verify:
        verify_checksums(directory)
    ratings = pd.read_csv(directory / "ratings.csv", dtype={"userId": str, "movieId": str})
    movies = pd.read_csv(directory / "movies.csv", dtype={"movieId": str})
    tags_path = directory / "tags.csv"
    tags = pd.read_csv(tags_path, dtype={"userId": str, "movieId": str}) if tags_path.exists() else None

    interactions = pd.DataFrame(
        {
            C.USER_ID: ratings["userId"],
            C.ITEM_ID: ratings["movieId"],
            C.INTERACTION_TYPE: "rating",
            C.TIMESTAMP: ratings["timestamp"].astype("int64"),
            C.RATING: ratings["rating"].astype("float64"),
            C.INTERACTION_ID: "ml-" + ratings["userId"] + "-" + ratings["movieId"],
            C.CHANNEL: "web",
            C.DEVICE_TYPE: "desktop",
        }
    )

    genres = movies["genres"].fillna(NO_GENRE).str.split("|")
    genres = genres.map(lambda g: [] if g == [NO_GENRE] else g)
    user_tags = pd.Series([[] for _ in range(len(movies))], index=movies["movieId"])
    if tags is not None and len(tags):
        clean = tags.assign(tag=tags["tag"].astype(str).str.strip().str.lower())
        grouped = clean.groupby("movieId")["tag"].agg(lambda s: list(dict.fromkeys(s)))
        user_tags.update(grouped)
    user_tags = user_tags.reindex(movies["movieId"]).values
    all_tags = [list(dict.fromkeys([g.lower() for g in gs] + ut)) for gs, ut in zip(genres, user_tags, strict=True)]
    descriptions = [
        (f"Genres: {', '.join(gs) if gs else 'unknown'}." + (f" Tagged: {', '.join(ut[:20])}." if len(ut) else ""))
        for gs, ut in zip(genres, user_tags, strict=True)
    ]
    items = pd.DataFrame(
        {
            C.ITEM_ID: movies["movieId"],
            C.TITLE: movies["title"].astype(str),
            C.CATEGORY: [g[0] if g else "Unknown" for g in genres],
            C.SUBCATEGORY: [g[1] if len(g) > 1 else "" for g in genres],
            C.TAGS: all_tags,
            C.DESCRIPTION: descriptions,
            C.CREATED_DATE: _year_from_title(movies["title"].astype(str)),
        }
    )
    data = canonicalize(interactions, items, None, source="movielens")
    data.meta["genres"] = {str(i): g for i, g in zip(movies["movieId"], genres, strict=True)}
    data.meta["licence"] = str(directory / "README.txt")
    data.items[C.PRICE] = np.nan
    return data
