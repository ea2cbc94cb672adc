"""The promotion gate (ARCHITECTURE §4/§5), a pure function so it is tested without MLflow.

A new model (the challenger) becomes ``champion`` when, on the gate metric (NDCG@10 by default):

1. it beats MostPopular (the floor: a model that cannot beat popularity is never served), and
2. it is **non-inferior to the current champion**: the paired bootstrap 95 % CI of
   ``challenger - champion``, both scored on the SAME split (the evaluate step refits the champion's
   recipe on the challenger's split, :func:`smartreco.training.evaluate`), has its lower bound above
   ``-margin`` (the non-inferiority margin delta, :data:`DEFAULT_MARGIN`; pipeline parameter
   ``gate_margin``): a fresher retrain of an equal model (difference ~0, CI straddling 0) replaces the
   champion, a model whose CI says it may be more than ``margin`` worse does not.

The MostPopular floor stays strict for a margin in [0, 1) (``challenger > MostPopular``); a negative
margin raises it (``challenger > MostPopular + |margin|``) and a margin >= 1 opens it. Without a
paired comparison (a champion that could not be re-evaluated on this split) the gate falls back to
point estimates (``challenger > champion - margin``) and says so in its reasons. Metric values lie in
[0, 1], so ``margin >= 1`` promotes any candidate and ``margin <= -1`` none: the e2e tests force
either outcome through this one parameter.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

GATE_METRIC = "ndcg@10"
#: default non-inferiority margin (delta) on NDCG@10 (README "Promotion gate"): about twice the half-width of the
#: paired 95 % CI between two near-equal models on MovieLens (ALS vs EASE: [-0.0045, +0.0067], 592 users),
#: so an equal retrain passes, and ~7 % of the hybrid's NDCG@10 (0.135), so a real regression does not
DEFAULT_MARGIN = 0.01


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    metric: str
    candidate: float | None
    champion: float | None
    mostpop: float | None
    reasons: list[str] = field(default_factory=list)
    margin: float = DEFAULT_MARGIN
    #: the paired bootstrap of challenger - champion on the same split (mean_diff, ci_low, ci_high, ...)
    ci: dict | None = None

    def to_dict(self) -> dict:
        return {"promote": self.promote, "metric": self.metric, "candidate": self.candidate,
                "champion": self.champion, "mostpop": self.mostpop, "margin": self.margin,
                "ci": dict(self.ci) if self.ci else None, "reasons": list(self.reasons)}

    def markdown(self) -> str:
        """The gate's report: decision, the CI against the champion and the margin, and every reason."""
        lines = [f"# Promotion gate: {'PROMOTE' if self.promote else 'keep as challenger'}", "",
                 f"- metric: {self.metric}; challenger {_fmt(self.candidate)}, champion {_fmt(self.champion)}, "
                 f"MostPopular {_fmt(self.mostpop)}",
                 f"- non-inferiority margin delta (gate_margin) = {self.margin:g}: promote when the CI's "
                 f"lower bound > {-self.margin:g}"]
        if self.ci:
            lines.append(f"- paired bootstrap challenger - champion (same split, {self.ci.get('n_users', '?')} users): "
                         f"mean {self.ci['mean_diff']:+.4f}, 95 % CI [{self.ci['ci_low']:+.4f}, "
                         f"{self.ci['ci_high']:+.4f}]")
        else:
            lines.append("- paired bootstrap challenger - champion: none (no champion, or not re-evaluated)")
        lines += ["", "Reasons:", *[f"- {r}" for r in self.reasons]]
        return "\n".join(lines) + "\n"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _value(metrics: Mapping[str, float] | None, metric: str) -> float | None:
    if not metrics or metrics.get(metric) is None:
        return None
    return float(metrics[metric])


def promotion_decision(
    candidate: Mapping[str, float],
    champion: Mapping[str, float] | None,
    mostpop: Mapping[str, float] | None,
    metric: str = GATE_METRIC,
    *,
    margin: float = DEFAULT_MARGIN,
    champion_ci: Mapping | None = None,
) -> GateDecision:
    """Promote iff candidate > MostPopular (see the module doc for a negative margin or one >= 1) and (no
    champion, or non-inferior to it within ``margin``: paired CI lower bound > -margin).

    ``champion_ci``: the paired bootstrap of candidate - champion on the same split (keys ``mean_diff``,
    ``ci_low``, ``ci_high``); ``champion``: the champion's stored metrics (the fallback and the report).
    A missing candidate or MostPopular value never promotes (the floor must be measured).
    """
    margin = float(margin)
    if math.isnan(margin):
        raise ValueError("gate_margin: must be a number, got NaN")
    within = f" - margin {margin:g}" if margin != 0 else ""
    # the floor stays "strictly beats MostPopular" for a positive margin below 1; a negative margin raises it
    # and a margin >= 1 (no metric difference reaches 1) opens the whole gate: the documented override
    floor_margin = margin if (margin < 0 or margin >= 1) else 0.0
    floor_within = f" - margin {floor_margin:g}" if floor_margin != 0 else ""
    cand, champ, pop = _value(candidate, metric), _value(champion, metric), _value(mostpop, metric)
    ci = dict(champion_ci) if champion_ci else None
    reasons: list[str] = []
    ok = True
    if cand is None:
        return GateDecision(False, metric, None, champ, pop, [f"candidate has no {metric}"], margin, ci)
    if pop is None:
        ok = False
        reasons.append(f"MostPopular {metric} not measured: the floor is required")
    elif cand <= pop - floor_margin:
        ok = False
        reasons.append(f"{metric} {cand:.4f} does not beat MostPopular {pop:.4f}{floor_within}")
    else:
        reasons.append(f"{metric} {cand:.4f} beats MostPopular {pop:.4f}{floor_within}")
    if ci is not None:
        low, high = float(ci["ci_low"]), float(ci["ci_high"])
        span = f"paired 95% CI of challenger - champion [{low:+.4f}, {high:+.4f}]"
        if low > -margin:
            reasons.append(f"{span}: lower bound above -margin {-margin:g} (non-inferior, margin {margin:g})")
        else:
            ok = False
            reasons.append(f"{span}: lower bound not above -margin {-margin:g} (may be worse than the champion "
                           f"by more than margin {margin:g})")
    elif champ is None:
        reasons.append("no current champion")
    elif cand > champ - margin:
        reasons.append(f"{metric} {cand:.4f} beats the champion {champ:.4f}{within} "
                       "(point estimates: the champion was not re-evaluated on this split)")
    else:
        ok = False
        reasons.append(f"{metric} {cand:.4f} does not beat the champion {champ:.4f}{within} "
                       "(point estimates: the champion was not re-evaluated on this split)")
    return GateDecision(ok, metric, cand, champ, pop, reasons, margin, ci)
