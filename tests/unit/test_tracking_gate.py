"""The promotion gate: champion only if it beats the current champion AND MostPopular on NDCG@10."""

import pytest

from smartreco.tracking.gate import DEFAULT_MARGIN, promotion_decision

pytestmark = [pytest.mark.unit]


@pytest.mark.parametrize(
    ("cand", "champ", "pop", "promote"),
    [
        (0.14, None, 0.08, True),  # first model, beats the floor
        (0.14, 0.13, 0.08, True),  # beats both
        (0.12, 0.13, 0.08, False),  # worse than the champion
        (0.13, 0.13, 0.08, False),  # a tie does not promote
        (0.07, None, 0.08, False),  # below MostPopular, even with no champion
        (0.08, None, 0.08, False),  # equal to MostPopular
        (0.20, 0.10, None, False),  # floor not measured
    ],
)
def test_gate(cand, champ, pop, promote):
    decision = promotion_decision(
        {"ndcg@10": cand}, None if champ is None else {"ndcg@10": champ}, None if pop is None else {"ndcg@10": pop},
        margin=0.0,  # the strict rule (point estimates, no paired comparison)
    )
    assert decision.promote is promote
    assert decision.reasons


def test_gate_uses_the_named_metric_and_refuses_a_missing_candidate_value():
    assert promotion_decision({"recall@10": 0.2}, None, {"recall@10": 0.1}, metric="recall@10").promote
    assert not promotion_decision({}, None, {"ndcg@10": 0.1}).promote


@pytest.mark.parametrize(("margin", "promote"), [(0.0, False), (0.02, True), (1.0, True), (-1.0, False)])
def test_gate_margin_is_how_far_below_each_reference_a_candidate_may_land(margin, promote):
    # 0.12 is 0.01 below the champion and above MostPopular: only a margin > 0.01 promotes it
    decision = promotion_decision({"ndcg@10": 0.12}, {"ndcg@10": 0.13}, {"ndcg@10": 0.08}, margin=margin)
    assert decision.promote is promote
    assert (f"margin {margin:g}" in " ".join(decision.reasons)) is (margin != 0)


def test_gate_margin_of_one_or_more_promotes_and_minus_one_never_does():
    # what the e2e pipeline test relies on to fix the gate's outcome (metric values lie in [0, 1])
    assert promotion_decision({"ndcg@10": 0.0}, {"ndcg@10": 0.9}, {"ndcg@10": 0.9}, margin=1.0).promote
    assert not promotion_decision({"ndcg@10": 1.0}, None, {"ndcg@10": 0.0}, margin=-1.0).promote


# ------------------------------------------------------------------ paired non-inferiority vs the champion
def _paired(diff_shift: float, n: int = 600, seed: int = 1) -> dict:
    """Per-user NDCG@10 of a champion and a challenger that differs by ``diff_shift`` plus per-user noise."""
    import numpy as np

    from smartreco.evaluation.stats import paired_bootstrap

    rng = np.random.default_rng(seed)
    champion = rng.beta(0.6, 3.0, n)
    noise = rng.normal(0, 0.05, n)
    challenger = champion + diff_shift + (noise - noise.mean())  # mean difference exactly diff_shift
    return paired_bootstrap(challenger, champion).to_dict()


def test_an_equal_retrain_within_the_margin_promotes():
    ci = _paired(0.0)
    assert ci["ci_low"] < 0 < ci["ci_high"], "an equal model: the CI straddles 0"
    decision = promotion_decision({"ndcg@10": 0.13}, {"ndcg@10": 0.131}, {"ndcg@10": 0.08}, champion_ci=ci)
    assert decision.promote and decision.margin == DEFAULT_MARGIN > -ci["ci_low"]
    # the strict rule (margin 0) would keep the same fresher retrain out
    assert not promotion_decision({"ndcg@10": 0.13}, {"ndcg@10": 0.131}, {"ndcg@10": 0.08}, champion_ci=ci,
                                  margin=0.0).promote


def test_a_worse_challenger_does_not_promote_even_above_mostpop():
    ci = _paired(-0.03)
    assert ci["ci_high"] < 0
    decision = promotion_decision({"ndcg@10": 0.10}, {"ndcg@10": 0.13}, {"ndcg@10": 0.08}, champion_ci=ci)
    assert not decision.promote
    assert any("may be worse than the champion" in r for r in decision.reasons)


def test_the_gate_report_names_the_ci_and_the_margin():
    ci = _paired(0.0)
    decision = promotion_decision({"ndcg@10": 0.13}, {"ndcg@10": 0.13}, {"ndcg@10": 0.08}, champion_ci=ci,
                                  margin=0.02)
    report = decision.markdown()
    assert f"[{ci['ci_low']:+.4f}, {ci['ci_high']:+.4f}]" in report and "delta (gate_margin) = 0.02" in report
    assert decision.to_dict()["ci"]["ci_low"] == ci["ci_low"] and decision.to_dict()["margin"] == 0.02


def test_the_margin_forces_either_outcome_with_a_paired_ci():
    worse, better = _paired(-0.2), _paired(+0.2)
    assert promotion_decision({"ndcg@10": 0.0}, {"ndcg@10": 0.9}, {"ndcg@10": 0.9}, champion_ci=worse,
                              margin=1.0).promote
    assert not promotion_decision({"ndcg@10": 1.0}, {"ndcg@10": 0.1}, {"ndcg@10": 0.0}, champion_ci=better,
                                  margin=-1.0).promote


def test_the_champion_recipe_refitted_on_the_same_split_gives_the_paired_ci(tmp_path):
    """training.evaluate refits the champion's recipe on the challenger's split: the same recipe gives
    the same per-user results, a CI of exactly [0, 0], and the gate promotes the fresher retrain."""
    from dataclasses import asdict

    from hybrid_tiny import tiny_config, tiny_data

    from smartreco.evaluation.evaluator import Evaluator
    from smartreco.evaluation.run import hybrid_from_params
    from smartreco.evaluation.split import temporal_split
    from smartreco.training import _champion_comparison

    data = tiny_data()
    recipe = {**asdict(tiny_config(cf_backend="svd", content="hashed")), "content": "hashed"}
    evaluator = Evaluator(temporal_split(data.interactions), data.items, progress=False)
    challenger = evaluator.evaluate(hybrid_from_params(recipe), "hybrid")
    ci = _champion_comparison(data, challenger, {"version": "3", "params": recipe}, progress=False)
    assert ci["version"] == "3" and ci["reference"] == "champion" and ci["n_users"] > 0
    assert ci["mean_diff"] == ci["ci_low"] == ci["ci_high"] == 0.0
    value = challenger.metrics["ndcg@10"]
    assert promotion_decision({"ndcg@10": value}, {"ndcg@10": value}, {"ndcg@10": 0.0}, champion_ci=ci).promote
