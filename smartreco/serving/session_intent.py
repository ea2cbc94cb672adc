"""Session intent: the categories a user has just clicked get a place in their next list.

Real-time feedback reaches the ranker as history (the clicked items lead it, so CB similarity, co-visitation and
transitions from the last items all move), but a LightGBM ranker weighs those features against context and
popularity, and whether three clicks on a category the list lacks bring it into the top 10 then depends on the model
and even on the hour of day: on the MovieLens pipeline bundle the ranker alone did it in 18.1 % of 800 user x hour
cases (``benchmarks/results/session_intent.md``). A user who has just shown interest in a category should see it
reflected at once, whatever the model (when the category has an item left to recommend), so: for each category of
the user's live clicks (newest first) that the list does not hold, the ranker's best-scored candidate of that
category takes the place of the list's lowest-scored item outside the live categories, up to ``slots`` items.
Everything else is the ranker's order; with no live clicks (offline evaluation, batch) the list is unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

#: share of a list the session rule may take (``floor(share * n)`` items, at least one when the share is > 0)
DEFAULT_SESSION_SHARE = 0.2
#: the most popular items of each live category that join the ranker's pool (so the category has a candidate)
SESSION_POOL_PER_CATEGORY = 5


def session_slots(n: int, share: float) -> int:
    """How many items of an ``n``-item list the rule may place."""
    if share <= 0 or n <= 0:
        return 0
    return min(n, max(1, int(math.floor(share * n + 1e-9))))


def admit_session_categories(
    picked: np.ndarray, categories: np.ndarray, recent: Sequence[str], n: int, slots: int
) -> tuple[np.ndarray, dict[int, str]]:
    """The picks with the session's missing categories admitted.

    ``picked``: positions of the list's items in a score-ordered pool (ascending = best first); ``categories``: the
    category of every pool position; ``recent``: the categories of the user's live clicks, newest first. Returns the
    new positions in score order and ``{position: category}`` of the admitted ones. A category with no candidate in
    the pool is skipped; a list shorter than ``n`` grows instead of losing an item."""
    picked = np.asarray(picked, dtype=np.int64)
    if slots <= 0 or n <= 0 or len(recent) == 0 or len(categories) == 0:
        return picked, {}
    live = list(dict.fromkeys(str(c) for c in recent if c is not None and str(c) != ""))
    held = {str(categories[p]) for p in picked}
    taken = set(picked.tolist())
    admitted: dict[int, str] = {}
    for cat in live:
        if len(admitted) == slots:
            break
        if cat in held:
            continue
        for pos in np.flatnonzero(categories == cat):  # best-scored first
            if int(pos) not in taken:
                admitted[int(pos)] = cat
                taken.add(int(pos))
                held.add(cat)
                break
    if not admitted:
        return picked, {}
    keep = list(picked.tolist())
    live_set = set(live)
    room = n - len(keep)
    drop = max(0, len(admitted) - max(room, 0))
    for pos in sorted(keep, reverse=True):  # the lowest-scored first, never an item of a live category
        if drop == 0:
            break
        if str(categories[pos]) not in live_set:
            keep.remove(pos)
            drop -= 1
    extra = list(admitted)  # newest live category first
    if drop:  # every pick is of a live category: admit only the newest ones there is room for
        extra = extra[: len(extra) - drop]
        admitted = {p: admitted[p] for p in extra}
    return np.asarray(sorted(keep + extra), dtype=np.int64), admitted
