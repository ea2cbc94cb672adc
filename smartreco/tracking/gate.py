"""The promotion gate (ARCHITECTURE §4/§5), a pure function so it is tested without MLflow.

A new model becomes ``champion`` only if it beats BOTH the current champion (when there is one)
and MostPopular on the gate metric (NDCG@10 by default) on the same evaluation protocol. Anything
else stays ``challenger``. Ties do not promote: a challenger must be strictly better.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

GATE_METRIC = "ndcg@10"


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    metric: str
    candidate: float | None
    champion: float | None
    mostpop: float | None
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"promote": self.promote, "metric": self.metric, "candidate": self.candidate,
                "champion": self.champion, "mostpop": self.mostpop, "reasons": list(self.reasons)}


def _value(metrics: Mapping[str, float] | None, metric: str) -> float | None:
    if not metrics or metrics.get(metric) is None:
        return None
    return float(metrics[metric])


def _margin(margin: float) -> str:
    return f" (margin {margin:g})" if margin else ""


def promotion_decision(
    candidate: Mapping[str, float],
    champion: Mapping[str, float] | None,
    mostpop: Mapping[str, float] | None,
    metric: str = GATE_METRIC,
    margin: float = 0.0,
) -> GateDecision:
    """Promote iff candidate > MostPopular - margin and (no champion or candidate > champion - margin).

    ``margin`` (the training pipeline's ``gate_margin``) is how far below each reference the candidate may
    land and still promote: 0 (the default) means strictly better; a margin >= 1 promotes every measured
    candidate and one <= -1 none (``metric`` lies in [0, 1]), which is how tests fix the gate's outcome.
    A missing candidate or MostPopular value never promotes (the floor must be measured).
    """
    cand, champ, pop = _value(candidate, metric), _value(champion, metric), _value(mostpop, metric)
    reasons: list[str] = []
    ok = True
    if cand is None:
        return GateDecision(False, metric, None, champ, pop, [f"candidate has no {metric}"])
    if pop is None:
        ok = False
        reasons.append(f"MostPopular {metric} not measured: the floor is required")
    elif cand <= pop - margin:
        ok = False
        reasons.append(f"{metric} {cand:.4f} does not beat MostPopular {pop:.4f}{_margin(margin)}")
    else:
        reasons.append(f"{metric} {cand:.4f} beats MostPopular {pop:.4f}{_margin(margin)}")
    if champ is None:
        reasons.append("no current champion")
    elif cand <= champ - margin:
        ok = False
        reasons.append(f"{metric} {cand:.4f} does not beat the champion {champ:.4f}{_margin(margin)}")
    else:
        reasons.append(f"{metric} {cand:.4f} beats the champion {champ:.4f}{_margin(margin)}")
    return GateDecision(ok, metric, cand, champ, pop, reasons)
