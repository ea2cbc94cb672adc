"""An experiment's plan: variants, traffic split, success metric, sample size, duration; plus the
deterministic hash assignment that keeps a user in one arm across requests and processes.

Stored as JSON (``experiment.json`` next to the logs) so the analysis knows what was planned.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from smartreco.errors import DataError
from smartreco.experiments.assignment import bucket as _hash_bucket

METRICS: tuple[str, ...] = ("ctr", "conversion", "reward")
ALLOCATION_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Variant:
    name: str
    allocation: float
    model_version: str | None = None


@dataclass
class Experiment:
    """A planned A/B(/n) test. The first variant is the control."""

    name: str
    variants: list[Variant]
    success_metric: str = "ctr"
    min_sample_size: int | None = None  # units per arm; None = compute from baseline_rate and mde
    duration_days: int = 14
    alpha: float = 0.05
    power: float = 0.8
    baseline_rate: float | None = None  # control's expected rate, for planning
    mde: float | None = None  # minimum detectable effect, relative (0.05 = +5 %)
    routing: str = "fixed"  # "fixed" (planned split; SRM applies) or "bandit" (split moves with rewards)
    salt: str = ""
    start: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def __post_init__(self) -> None:
        self.variants = [v if isinstance(v, Variant) else Variant(**v) for v in self.variants]
        self.validate()
        if self.min_sample_size is None and self.baseline_rate is not None and self.mde is not None:
            from smartreco.experiments.sample_size import sample_size_for_lift

            self.min_sample_size = max(
                sample_size_for_lift(self.baseline_rate, self.mde, alpha=self.alpha, power=self.power)
            )

    def validate(self) -> None:
        if not self.name:
            raise DataError("experiment.name: must not be empty")
        if len(self.variants) < 2:
            raise DataError("experiment.variants: need at least two variants (control first)")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise DataError(f"experiment.variants: duplicate variant names {names}")
        allocs = [float(v.allocation) for v in self.variants]
        if any(not (0.0 < a <= 1.0) or math.isnan(a) for a in allocs):
            raise DataError(f"experiment.variants.allocation: each must be in (0, 1], got {allocs}")
        if abs(sum(allocs) - 1.0) > ALLOCATION_TOLERANCE:
            raise DataError(f"experiment.variants.allocation: must sum to 1, got {sum(allocs):.6g}")
        if self.success_metric not in METRICS:
            raise DataError(f"experiment.success_metric: must be one of {', '.join(METRICS)}")
        if self.min_sample_size is not None and self.min_sample_size < 1:
            raise DataError("experiment.min_sample_size: must be >= 1")
        if self.duration_days < 1:
            raise DataError("experiment.duration_days: must be >= 1")
        if not (0 < self.alpha < 1 and 0 < self.power < 1):
            raise DataError("experiment.alpha / power: must be in (0, 1)")
        if self.routing not in ("fixed", "bandit"):
            raise DataError("experiment.routing: must be 'fixed' or 'bandit'")

    # ---- assignment -------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return [v.name for v in self.variants]

    @property
    def allocations(self) -> np.ndarray:
        return np.array([v.allocation for v in self.variants], float)

    def bucket(self, unit_id: str) -> float:
        """A uniform number in [0, 1) fixed by (experiment, salt, unit): same unit, same arm, forever."""
        return _hash_bucket(str(unit_id), salt=f"{self.name}:{self.salt}")  # the router's hash rule

    def assign(self, unit_id: str) -> str:
        edges = np.cumsum(self.allocations)
        idx = int(np.searchsorted(edges, self.bucket(str(unit_id)), side="right"))
        return self.variants[min(idx, len(self.variants) - 1)].name

    def assign_many(self, unit_ids: list[str] | np.ndarray) -> np.ndarray:
        edges = np.cumsum(self.allocations)
        buckets = np.fromiter((self.bucket(str(u)) for u in unit_ids), float, count=len(unit_ids))
        idx = np.minimum(np.searchsorted(edges, buckets, side="right"), len(self.variants) - 1)
        return np.asarray(self.names, dtype=object)[idx]

    # ---- persistence ------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    @classmethod
    def from_dict(cls, data: dict) -> Experiment:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise DataError(f"experiment: unknown field(s) {', '.join(unknown)}")
        if "name" not in data or "variants" not in data:
            raise DataError("experiment: 'name' and 'variants' are required")
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path) -> Experiment:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: cannot read experiment JSON ({exc})") from None
        return cls.from_dict(data)


def create_experiment(name: str, variants: dict[str, float], **kwargs: object) -> Experiment:
    """E.g. ``create_experiment("v2", {"champion": 0.5, "challenger": 0.5}, baseline_rate=0.1, mde=0.05)``."""
    return Experiment(name=name, variants=[Variant(k, float(v)) for k, v in variants.items()], **kwargs)
