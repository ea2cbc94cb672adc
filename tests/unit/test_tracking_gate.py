"""The promotion gate: champion only if it beats the current champion AND MostPopular on NDCG@10."""

import pytest

from smartreco.tracking.gate import promotion_decision

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
        {"ndcg@10": cand}, None if champ is None else {"ndcg@10": champ}, None if pop is None else {"ndcg@10": pop}
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
