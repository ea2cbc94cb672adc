"""Batch recommendations for the email channel: top-N per user of a segment, for a mailing system.

The same model runtime the graph serves (:class:`smartreco.serving.runtime.BundleRuntime`), called
the way the graph calls it (CF + CB candidates, then the hybrid ranker with a category cap), so an
email and a web answer for the same user agree. Output: one row per (user, rank) with item, title,
category, score, confidence, explanation and model version, as parquet and CSV.

Exclusions: everything the user already interacted with (never re-recommended), a global list
(e.g. out of stock) and per-user pairs (e.g. mailed last week). Diversity: at most
``max_category_share`` of a user's list from one category.

Segments (``segment``): ``all`` | ``active:DAYS`` (an event in the last DAYS before the data's end) |
``min_events:N`` | ``users:ID,ID,...`` | a CSV/parquet path with a ``user_id`` column.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from smartreco.data import columns as C
from smartreco.errors import DataError
from smartreco.explain.reasons import explain
from smartreco.features.history import HISTORY_LENGTH

CHANNEL = "email"
OUTPUT_COLUMNS: tuple[str, ...] = (
    C.USER_ID, C.RANK, C.ITEM_ID, C.TITLE, C.CATEGORY, C.SCORE, "confidence", "explanation", "model_version",
    "segment", "generated_at",
)
CANDIDATES = 100


@dataclass
class BatchResult:
    frame: pd.DataFrame
    users: int
    short_users: int  # users who got fewer than n items (tiny catalogue after exclusions)
    seconds: float
    files: dict[str, str] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        return {"users": self.users, "rows": len(self.frame), "short_users": self.short_users,
                "seconds": round(self.seconds, 3),
                "ms_per_user": round(1000 * self.seconds / max(1, self.users), 3),
                "categories_per_user": float(self.frame.groupby(C.USER_ID)[C.CATEGORY].nunique().mean())
                if len(self.frame) else 0.0}

    def to_markdown(self, rows: int = 20) -> str:
        """The first ``rows`` rows as a Markdown table (no tabulate needed)."""
        from smartreco.run_summary import md_table

        cols = [C.USER_ID, C.RANK, C.ITEM_ID, C.TITLE, C.SCORE, "explanation"]
        return md_table(cols, self.frame[cols].head(rows).to_numpy().tolist()) + "\n"


def _read_ids(path: Path, column: str) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype=str)
    if column not in df.columns:
        raise DataError(f"{path}: missing column {column}")
    return df


def select_segment(interactions: pd.DataFrame, segment: str) -> list[str]:
    """User ids of a segment (sorted, as strings); see the module docstring for the syntax."""
    segment = (segment or "all").strip()
    users = interactions[C.USER_ID].astype(str)
    if segment == "all":
        chosen = users.unique()
    elif segment.startswith("active:"):
        days = _number(segment, "active:")
        ts = pd.to_datetime(interactions[C.TIMESTAMP], utc=True)
        chosen = users[ts >= ts.max() - pd.Timedelta(days=days)].unique()
    elif segment.startswith("min_events:"):
        k = _number(segment, "min_events:")
        counts = users.value_counts()
        chosen = counts.index[counts.to_numpy() >= k].to_numpy()
    elif segment.startswith("users:"):
        chosen = [u.strip() for u in segment.removeprefix("users:").split(",") if u.strip()]
    else:
        chosen = _read_ids(Path(segment), C.USER_ID)[C.USER_ID].astype(str).unique()
    out = sorted({str(u) for u in chosen})
    if not out:
        raise DataError(f"segment: {segment!r} selects no users")
    return out


def _number(segment: str, prefix: str) -> float:
    try:
        return float(segment.removeprefix(prefix))
    except ValueError:
        raise DataError(f"segment: {segment!r} needs a number after {prefix!r}") from None


def user_histories(interactions: pd.DataFrame, users: Iterable[str]) -> dict[str, list[str]]:
    """Every item each user interacted with, oldest first (the ranker reads the most recent ones)."""
    wanted = set(users)
    df = interactions[[C.USER_ID, C.ITEM_ID, C.TIMESTAMP]].copy()
    df[C.USER_ID] = df[C.USER_ID].astype(str)
    df = df[df[C.USER_ID].isin(wanted)]
    df[C.ITEM_ID] = df[C.ITEM_ID].astype(str)
    df = df.sort_values([C.USER_ID, C.TIMESTAMP], kind="stable")
    return df.groupby(C.USER_ID, sort=False)[C.ITEM_ID].agg(list).to_dict()


def user_exclusions(pairs: pd.DataFrame | None) -> dict[str, set[str]]:
    if pairs is None or pairs.empty:
        return {}
    for col in (C.USER_ID, C.ITEM_ID):
        if col not in pairs.columns:
            raise DataError(f"exclusions: missing column {col}")
    g = pairs.astype({C.USER_ID: str, C.ITEM_ID: str}).groupby(C.USER_ID)[C.ITEM_ID]
    return {u: set(items) for u, items in g}


def recommend_batch(
    bundle,
    interactions: pd.DataFrame,
    *,
    segment: str = "all",
    n: int = 10,
    exclude_items: Iterable[str] = (),
    exclude_pairs: pd.DataFrame | None = None,
    max_category_share: float = 0.5,
    context: dict | None = None,
) -> BatchResult:
    """Top-``n`` per user of ``segment`` with explanations (see the module docstring)."""
    if n <= 0:
        raise DataError(f"n: must be positive, got {n}")
    if not 0.0 < max_category_share <= 1.0:
        raise DataError(f"max_category_share: must be in (0, 1], got {max_category_share}")
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    users = select_segment(interactions, segment)
    histories = user_histories(interactions, users)
    per_user = user_exclusions(exclude_pairs)
    global_ex = {str(i) for i in exclude_items}
    ctx = {"channel": CHANNEL, **(context or {})}
    generated = datetime.now(UTC).isoformat(timespec="seconds")
    version = str(getattr(bundle, "version", "unknown"))
    cols: dict[str, list] = {c: [] for c in OUTPUT_COLUMNS}
    short = 0
    for user in tqdm(users, desc=f"batch {segment}", unit="user", mininterval=2.0):
        seen = histories.get(user, [])
        history = seen[-HISTORY_LENGTH:]
        exclude = set(seen) | global_ex | per_user.get(user, set())
        cf = bundle.cf_candidates(user, history, CANDIDATES, exclude)
        cb = bundle.cb_candidates(history, CANDIDATES, exclude) if history else {}
        ranked = [r for r in bundle.rank(user, history, cf, cb, ctx, n, exclude, max_category_share=max_category_share)
                  if r.item_id not in exclude][:n]
        short += len(ranked) < n
        for pos, r in enumerate(ranked, start=1):
            cols[C.USER_ID].append(user)
            cols[C.RANK].append(pos)
            cols[C.ITEM_ID].append(r.item_id)
            cols[C.TITLE].append(r.title)
            cols[C.CATEGORY].append(r.category)
            cols[C.SCORE].append(float(r.score))
            cols["confidence"].append(float(r.confidence))
            cols["explanation"].append(explain(r.component_scores, because_title=r.because_title,
                                               category=r.category, channel=CHANNEL))
    rows = len(cols[C.USER_ID])
    cols["model_version"] = [version] * rows
    cols["segment"] = [segment] * rows
    cols["generated_at"] = [generated] * rows
    frame = pd.DataFrame(cols, columns=list(OUTPUT_COLUMNS))
    return BatchResult(frame, len(users), short, time.perf_counter() - t0)


def write_batch(result: BatchResult, out_dir: Path | str, name: str = "email_recommendations") -> dict[str, str]:
    """``<name>.parquet`` + ``<name>.csv`` (what a mailing system imports)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"parquet": str(out / f"{name}.parquet"), "csv": str(out / f"{name}.csv")}
    result.frame.to_parquet(files["parquet"], index=False)
    result.frame.to_csv(files["csv"], index=False)
    result.files = files
    return files
