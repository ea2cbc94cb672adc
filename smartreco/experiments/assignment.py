"""Consistent A/B assignment: the same user lands in the same arm on every worker and after restarts.

Python's ``hash()`` is salted per process (PYTHONHASHSEED), so two gunicorn workers, or one worker
before and after a restart, would disagree; sha256 of ``salt:user_id`` does not.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def bucket(user_id: str, salt: str = "smartreco") -> float:
    """A stable number in [0, 1) for ``user_id`` within experiment ``salt``."""
    digest = hashlib.sha256(f"{salt}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign(user_id: str, weights: Sequence[float], salt: str = "smartreco") -> int:
    """Index of the arm for ``user_id`` given arm ``weights`` (normalised here; need not sum to 1)."""
    if not weights or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError("weights: need at least one non-negative weight with a positive sum")
    point = bucket(user_id, salt) * sum(weights)
    acc = 0.0
    for i, w in enumerate(weights):
        acc += w
        if point < acc:
            return i
    return len(weights) - 1


def assign_ratio(user_id: str, ratio_a: float, salt: str = "smartreco") -> int:
    """Two-arm split: arm 0 for a ``ratio_a`` share of users, arm 1 for the rest."""
    if not 0.0 <= ratio_a <= 1.0:
        raise ValueError(f"ratio_a: must be within [0, 1], got {ratio_a}")
    return 0 if bucket(user_id, salt) < ratio_a else 1
