"""Ablation of the hybrid: one retrained ranker per variant, a paired CI against the full model, every
read of the held-out targets counted."""

from __future__ import annotations

import pytest
from hybrid_tiny import tiny_config, tiny_data

from smartreco.evaluation.ablation import Variant, run_ablation
from smartreco.evaluation.evaluator import Evaluator
from smartreco.evaluation.split import temporal_split
from smartreco.models.hybrid import HybridRanker

pytestmark = [pytest.mark.unit]


def test_ablation_compares_each_variant_with_the_full_hybrid_and_counts_reads():
    data = tiny_data()
    evaluator = Evaluator(temporal_split(data.interactions), data.items, progress=False)
    model = HybridRanker(tiny_config(n_folds=2), progress=False)
    model.keep_ranking_rows = True
    full = evaluator.evaluate(model, "hybrid")
    chosen = [Variant("-transitions", ("transitions",), ("trans_score", "trans_rank", "trans_last")),
              Variant("-context", (), ("user_activity",))]
    out = run_ablation(evaluator, model, full, chosen)
    assert set(out["variants"]) == {"hybrid-transitions", "hybrid-context"}
    for v in out["variants"].values():
        comp = v["vs_full"]["ndcg@10"]
        assert comp["reference"] == "hybrid" and comp["ci_low"] <= comp["mean_diff"] <= comp["ci_high"]
        assert "recall@10" in v["vs_full"]
    assert evaluator.target_reads == ["hybrid", "hybrid-transitions", "hybrid-context"]
    # past its time budget the ablation lists the variants it did not run and reads nothing more
    late = run_ablation(evaluator, model, full, chosen, budget_s=1e-9)
    assert late["variants"] == {} and late["not_run"] == ["hybrid-transitions", "hybrid-context"]
    assert len(evaluator.target_reads) == 3
    assert model.fit_info["folds"] == 2
