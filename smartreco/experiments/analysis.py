"""From feedback-log rows to a decision: per-arm summary -> tests -> plain-language recommendation.

The unit is the served recommendation (an impression = one request): a click is an impression with
at least one engagement on it, a conversion one with a purchase/like, the reward the sum of the
rewards sent for it. Feedback is joined to its impression by ``request_id``; feedback without one
cannot be attributed and is only counted. The first variant (the experiment's control, or the
most-served arm when no design is given) is compared with every other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from smartreco.data import columns as C
from smartreco.errors import DataError
from smartreco.experiments import stats
from smartreco.experiments.design import Experiment
from smartreco.experiments.sample_size import sample_size_for_lift
from smartreco.experiments.sequential import sequential_proportions
from smartreco.feedback.records import EVENT, FEEDBACK, IMPRESSION, REQUEST_ID, REWARD, VARIANT

#: engagement types that make an impression "clicked"
CLICK_TYPES = frozenset({"click", "add_to_cart", "purchase", "like", "share"})
#: types that make it "converted"
CONVERSION_TYPES = frozenset(C.POSITIVE_TYPES)
DEFAULT_RELATIVE_MDE = 0.10
DAY = "day"


@dataclass
class Analysis:
    summary: dict[str, Any]  # JSON-able
    daily: pd.DataFrame  # per day x arm: cumulative counts, CTR + CI, traffic share, sequential p
    per_impression: pd.DataFrame  # one row per request: variant, day, clicked, converted, reward


def per_impression(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """One row per served request with its outcome, from :func:`smartreco.feedback.read_dataset` rows."""
    for col in (EVENT, REQUEST_ID, VARIANT, C.TIMESTAMP):
        if col not in df:
            raise DataError(f"feedback logs: missing column {col}")
    imp = df[df[EVENT] == IMPRESSION]
    fb = df[df[EVENT] == FEEDBACK]
    if imp.empty:
        expected = int(fb[REQUEST_ID].dropna().nunique())
        raise DataError(
            "feedback logs: no impressions (served recommendations) to analyse"
            + (
                f"; {expected} request id(s) with feedback expected one (is the request logger set on the "
                "graph and the event service reachable?)"
                if expected
                else ""
            )
        )
    imp = (
        imp.groupby(REQUEST_ID, sort=False)
        .agg(
            **{
                VARIANT: (VARIANT, "first"),
                C.USER_ID: (C.USER_ID, "first"),
                C.TIMESTAMP: (C.TIMESTAMP, "min"),
            }
        )
        .reset_index()
    )
    if imp[VARIANT].isna().any():
        raise DataError(f"feedback logs: {int(imp[VARIANT].isna().sum())} impression(s) without a variant")
    attributed = fb[fb[REQUEST_ID].isin(imp[REQUEST_ID])]
    itype = attributed[C.INTERACTION_TYPE]
    reward = attributed[REWARD].fillna(itype.map(C.INTERACTION_WEIGHTS)).fillna(0.0)
    outcome = (
        pd.DataFrame(
            {
                REQUEST_ID: attributed[REQUEST_ID].to_numpy(),
                "clicked": (itype.isin(CLICK_TYPES) | (attributed[REWARD].fillna(0) > 0)).to_numpy(),
                "converted": itype.isin(CONVERSION_TYPES).to_numpy(),
                "reward": reward.to_numpy(float),
            }
        )
        .groupby(REQUEST_ID)
        .agg(clicked=("clicked", "any"), converted=("converted", "any"), reward=("reward", "sum"))
    )
    out = imp.merge(outcome, left_on=REQUEST_ID, right_index=True, how="left")
    out["clicked"] = out["clicked"].eq(True)  # no feedback (NaN after the left join) = not clicked
    out["converted"] = out["converted"].eq(True)
    out["reward"] = out["reward"].fillna(0.0).astype(float)
    out[DAY] = out[C.TIMESTAMP].dt.floor("D")
    counts = {
        "impressions": len(out),
        "feedback": len(fb),
        "feedback_attributed": len(attributed),
        "feedback_unattributed": len(fb) - len(attributed),
        "feedback_without_request_id": int(fb[REQUEST_ID].isna().sum()),
    }
    return out, counts


def missing_impressions(df: pd.DataFrame, limit: int = 50) -> dict[str, Any]:
    """Impressions the log should hold but does not: request ids that feedback names and no impression
    has. Seldon's request logger is an unretried asynchronous queue, so some answers are never logged;
    their feedback cannot be attributed to an arm and is left out of the per-arm rates (counted here)."""
    fb = df[(df[EVENT] == FEEDBACK) & df[REQUEST_ID].notna()]
    served = set(df.loc[df[EVENT] == IMPRESSION, REQUEST_ID].dropna())
    lost = fb[~fb[REQUEST_ID].isin(served)]
    ids = sorted(lost[REQUEST_ID].astype(str).unique())
    expected = int(fb[REQUEST_ID].nunique())
    return {
        "count": len(ids),
        "feedback": len(lost),
        "expected": expected,
        "share": len(ids) / expected if expected else 0.0,
        "request_ids": ids[:limit],
    }


def _arm_summary(g: pd.DataFrame, alpha: float) -> dict[str, Any]:
    n = len(g)
    clicks, conv = int(g["clicked"].sum()), int(g["converted"].sum())
    ctr_lo, ctr_hi = stats.wilson_ci(clicks, n, alpha)
    cv_lo, cv_hi = stats.wilson_ci(conv, n, alpha)
    mean, var = float(g["reward"].mean()), float(g["reward"].var(ddof=1)) if n > 1 else 0.0
    r_lo, r_hi = stats.mean_ci(mean, var, n, alpha)
    return {
        "impressions": n,
        "users": int(g[C.USER_ID].nunique()),
        "clicks": clicks,
        "ctr": clicks / n,
        "ctr_ci": [float(ctr_lo), float(ctr_hi)],
        "conversions": conv,
        "conversion_rate": conv / n,
        "conversion_ci": [float(cv_lo), float(cv_hi)],
        "mean_reward": mean,
        "reward_var": var,
        "reward_ci": [float(r_lo), float(r_hi)],
    }


def _f(v: Any) -> float | None:
    v = float(v)
    return v if np.isfinite(v) else None


def _compare(
    a: dict, b: dict, metric: str, alpha: float, tau: float, seq: dict[str, np.ndarray]
) -> dict[str, Any]:
    key = {"ctr": "clicks", "conversion": "conversions"}.get(metric, "clicks")
    xa, na, xb, nb = a[key], a["impressions"], b[key], b["impressions"]
    z, p, lo, hi = stats.two_proportion_ztest(xa, na, xb, nb, alpha)
    lift, lift_lo, lift_hi = stats.relative_lift(xa, na, xb, nb, alpha)
    t, df, tp, tlo, thi = stats.welch_ttest(
        a["mean_reward"], a["reward_var"], na, b["mean_reward"], b["reward_var"], nb, alpha
    )
    return {
        "proportion_metric": "ctr" if key == "clicks" else "conversion",
        "ztest": {"z": _f(z), "p_value": _f(p), "difference": _f(xb / nb - xa / na), "ci": [_f(lo), _f(hi)]},
        "welch_reward": {
            "t": _f(t),
            "df": _f(df),
            "p_value": _f(tp),
            "difference": _f(b["mean_reward"] - a["mean_reward"]),
            "ci": [_f(tlo), _f(thi)],
        },
        "cohens_h": _f(stats.cohens_h(xa / na, xb / nb)),
        "cohens_d_reward": _f(
            stats.cohens_d(a["mean_reward"], a["reward_var"], na, b["mean_reward"], b["reward_var"], nb)
        ),
        "relative_lift": _f(lift),
        "relative_lift_ci": [_f(lift_lo), _f(lift_hi)],
        "sequential": {
            "method": "mSPRT (normal mixture)",
            "tau": tau,
            "p_value": _f(seq["p_value"][-1]),
            "cs": [_f(seq["cs_low"][-1]), _f(seq["cs_high"][-1])],
        },
    }


def _recommend(
    comp: dict, ctl: str, trt: str, n_min: int, required: int, srm: dict | None, alpha: float, metric: str
) -> tuple[str, str]:
    """(decision, sentence) for one treatment vs the control."""
    if srm is not None and srm["mismatch"]:
        return "invalid", (
            f"Do not decide: the traffic split does not match the plan (sample-ratio mismatch, "
            f"p = {srm['p_value']:.2g}); fix assignment/logging and rerun."
        )
    label = comp["proportion_metric"].upper() if metric != "reward" else "mean reward"
    lift = comp["relative_lift"]
    lift_txt = f"{lift:+.1%}" if lift is not None else "n/a"
    ci = comp["relative_lift_ci"]
    ci_txt = f" (95% CI {ci[0]:+.1%} to {ci[1]:+.1%})" if None not in ci else ""
    p_fixed = comp["welch_reward"]["p_value"] if metric == "reward" else comp["ztest"]["p_value"]
    p_seq = comp["sequential"]["p_value"]
    diff = comp["welch_reward"]["difference"] if metric == "reward" else comp["ztest"]["difference"]
    reached = n_min >= required
    seq_sig = p_seq is not None and p_seq <= alpha
    fixed_sig = reached and p_fixed is not None and p_fixed <= alpha
    if seq_sig or fixed_sig:
        how = f"always-valid p = {p_seq:.3g}" if seq_sig else f"fixed-horizon p = {p_fixed:.3g}"
        if diff is not None and diff > 0:
            return "ship", f"Ship {trt}: {label} {lift_txt} vs {ctl}{ci_txt}, significant ({how})."
        return "keep_control", f"Keep {ctl}: {trt} is worse, {label} {lift_txt}{ci_txt}, significant ({how})."
    if not reached:
        return "continue", (
            f"Keep running: {n_min:,} of the {required:,} impressions per arm needed; "
            f"{label} {lift_txt} for {trt} so far is not yet conclusive."
        )
    return "no_difference", (
        f"No detectable difference: {trt} vs {ctl} {label} {lift_txt}{ci_txt} with the "
        f"planned sample size reached; keep {ctl} (the simpler choice)."
    )


def daily_series(imp: pd.DataFrame, arms: list[str], alpha: float, tau: float) -> pd.DataFrame:
    """Cumulative per-day-per-arm counts, CTR with CI, the day's traffic share, and the sequential p-path
    (treatment vs control) on each treatment's rows."""
    grid = pd.MultiIndex.from_product([sorted(imp[DAY].unique()), arms], names=[DAY, VARIANT])
    day = (
        imp.groupby([DAY, VARIANT])
        .agg(impressions=("clicked", "size"), clicks=("clicked", "sum"), conversions=("converted", "sum"))
        .reindex(grid, fill_value=0)
        .reset_index()
    )
    day["share"] = day["impressions"] / day.groupby(DAY)["impressions"].transform("sum").replace(0, np.nan)
    for col in ("impressions", "clicks", "conversions"):
        day[f"cum_{col}"] = day.groupby(VARIANT)[col].cumsum()
    lo, hi = stats.wilson_ci(day["cum_clicks"].to_numpy(), day["cum_impressions"].to_numpy(), alpha)
    with np.errstate(invalid="ignore", divide="ignore"):
        day["ctr"] = day["cum_clicks"] / day["cum_impressions"].replace(0, np.nan)
    day["ctr_low"], day["ctr_high"] = lo, hi
    day["seq_p_value"] = np.nan
    ctl = day[day[VARIANT] == arms[0]].reset_index(drop=True)
    for arm in arms[1:]:
        mask = day[VARIANT] == arm
        trt = day[mask]
        seq = sequential_proportions(
            ctl["cum_clicks"].to_numpy(),
            ctl["cum_impressions"].to_numpy(),
            trt["cum_clicks"].to_numpy(),
            trt["cum_impressions"].to_numpy(),
            tau=tau,
            alpha=alpha,
        )
        day.loc[mask, "seq_p_value"] = seq["p_value"]
    return day


def analyse(df: pd.DataFrame, experiment: Experiment | None = None) -> Analysis:
    """Per-arm summary, tests of each treatment against the control, SRM, sample size and a decision."""
    imp, counts = per_impression(df)
    observed = imp[VARIANT].value_counts()
    if experiment is not None:
        unknown = sorted(set(observed.index) - set(experiment.names))
        if unknown:
            raise DataError(
                f"feedback logs: variant(s) {', '.join(map(str, unknown))} not in experiment "
                f"{experiment.name!r} ({', '.join(experiment.names)})"
            )
        arms = experiment.names
        alpha, metric = experiment.alpha, experiment.success_metric
    else:
        arms = [str(v) for v in observed.index]  # most-served first = control
        alpha, metric = 0.05, "ctr"
    if len(arms) < 2:
        raise DataError(f"feedback logs: need at least two variants, found {', '.join(arms)}")
    per_arm = {
        arm: _arm_summary(imp[imp[VARIANT] == arm], alpha) if (imp[VARIANT] == arm).any() else None
        for arm in arms
    }
    missing = [a for a, s in per_arm.items() if s is None]
    if missing:
        raise DataError(f"feedback logs: no impressions for variant(s) {', '.join(missing)}")
    ctl = arms[0]
    base = per_arm[ctl]["ctr"] if metric != "conversion" else per_arm[ctl]["conversion_rate"]
    mde = experiment.mde if experiment is not None and experiment.mde else DEFAULT_RELATIVE_MDE
    plan_base = experiment.baseline_rate if experiment is not None and experiment.baseline_rate else base
    tau = max(plan_base * mde, 1e-4)
    if experiment is not None and experiment.min_sample_size:
        required = int(experiment.min_sample_size)
    elif 0 < plan_base < 1 and 0 < plan_base * (1 + mde) < 1:
        required = max(sample_size_for_lift(plan_base, mde, alpha=alpha, power=0.8))
    else:
        required = 0
    fixed = experiment is None or experiment.routing == "fixed"
    srm = None
    if fixed:
        share = experiment.allocations if experiment is not None else np.full(len(arms), 1 / len(arms))
        srm = stats.srm_check([per_arm[a]["impressions"] for a in arms], share)
    daily = daily_series(imp, arms, alpha, tau)
    comparisons, decisions = [], []
    n_min = min(s["impressions"] for s in per_arm.values())
    for arm in arms[1:]:
        d_ctl = daily[daily[VARIANT] == ctl]
        d_trt = daily[daily[VARIANT] == arm]
        key = "cum_conversions" if metric == "conversion" else "cum_clicks"
        seq = sequential_proportions(
            d_ctl[key].to_numpy(),
            d_ctl["cum_impressions"].to_numpy(),
            d_trt[key].to_numpy(),
            d_trt["cum_impressions"].to_numpy(),
            tau=tau,
            alpha=alpha,
        )
        comp = _compare(per_arm[ctl], per_arm[arm], metric, alpha, tau, seq)
        decision, sentence = _recommend(comp, ctl, arm, n_min, required, srm, alpha, metric)
        comparisons.append(
            {"control": ctl, "treatment": arm, **comp, "decision": decision, "recommendation": sentence}
        )
        decisions.append(sentence)
    lost = missing_impressions(df)
    summary = {
        "experiment": experiment.to_dict() if experiment is not None else None,
        "success_metric": metric,
        "alpha": alpha,
        "unit": "impression (served request)",
        "counts": counts,
        "missing_impressions": lost,
        "days": int(imp[DAY].nunique()),
        "period": [imp[C.TIMESTAMP].min().isoformat(), imp[C.TIMESTAMP].max().isoformat()],
        "arms": {a: {"share": per_arm[a]["impressions"] / len(imp), **per_arm[a]} for a in arms},
        "srm": srm if srm is not None else {"skipped": "bandit routing: the split is meant to move"},
        "sample_size": {
            "required_per_arm": required,
            "smallest_arm": n_min,
            "relative_mde": mde,
            "baseline_rate": plan_base,
            "progress": (n_min / required) if required else None,
        },
        "comparisons": comparisons,
        "recommendation": " ".join(decisions),
        "caveats": [
            "Impressions of one user are treated as independent; with many requests per user the "
            "fixed-horizon p-values are optimistic (randomisation is per user)."
        ]
        + (
            [
                "Bandit routing: the split moved with the data, so per-arm rates mix periods and the "
                "fixed-horizon tests are only indicative; the always-valid test is the safer read."
            ]
            if not fixed
            else []
        )
        + (
            [
                f"{lost['count']:,} of {lost['expected']:,} request id(s) named by feedback have no impression "
                f"(the request logger is best effort); their {lost['feedback']:,} feedback record(s) are not in "
                "the per-arm rates."
            ]
            if lost["count"]
            else []
        ),
    }
    return Analysis(summary=summary, daily=daily, per_impression=imp)
