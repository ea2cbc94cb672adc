"""`--source movielens|synthetic|PATH` resolution, shared by the CLI, components and benchmarks."""

from __future__ import annotations

from pathlib import Path

from smartreco.data.canonical import CanonicalData
from smartreco.errors import DataError

#: size of `--source synthetic` when no size is given: small enough for tests, big enough to learn on
DEFAULT_SYNTHETIC = {"n_users": 2_000, "n_items": 3_000, "n_interactions": 100_000, "seed": 7}


def load_source(source: str, **synthetic_kwargs: int) -> CanonicalData:
    if source == "movielens":
        from smartreco.data.movielens import load_movielens

        return load_movielens()
    if source == "synthetic":
        from smartreco.data.synthetic import generate_in_memory

        return generate_in_memory(**{**DEFAULT_SYNTHETIC, **synthetic_kwargs})
    path = Path(source)
    if path.is_dir():
        if (path / "ratings.csv").exists() and (path / "movies.csv").exists():
            from smartreco.data.movielens import load_movielens

            return load_movielens(path)
        from smartreco.data.io import load_folder

        return load_folder(path)
    raise DataError(f"--source {source!r}: expected movielens, synthetic or a folder of canonical tables")
