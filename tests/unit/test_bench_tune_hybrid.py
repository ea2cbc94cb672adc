"""benchmarks/tune_hybrid.py's options: a changed base fit (--base) needs its own results file (--tag), a state
of another base fit is refused, and every trial and the EASE reference land in the ledger as validation reads,
on tiny synthetic data (no test split loaded)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from hybrid_tiny import tiny_config, tiny_data

from smartreco.evaluation.evaluator import Evaluator
from smartreco.evaluation.hybrid_tuning import TuningState
from smartreco.evaluation.split import temporal_split, validation_split
from smartreco.models.hybrid import HybridRanker

pytestmark = [pytest.mark.unit]

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "tune_hybrid.py"


@pytest.fixture(scope="module")
def tune():
    spec = importlib.util.spec_from_file_location("tune_hybrid_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fitted():
    data = tiny_data()
    evaluator = Evaluator(validation_split(temporal_split(data.interactions).train), data.items, progress=False)
    model = HybridRanker(tiny_config(n_folds=3), progress=False)
    model.keep_ranking_rows = True
    model.fit(evaluator.train_data)
    return evaluator, TuningState.from_model(evaluator, model)


def _tiny_base(state: TuningState, tune) -> str:
    """--base JSON that names the tiny state's values of every field BASE sets (so the state matches)."""
    return json.dumps({k: getattr(state.config, k) for k in tune.BASE})


def test_a_changed_base_needs_its_own_tag_and_file(tune, tmp_path):
    args, base = tune.parse_args(["--out-dir", str(tmp_path)])
    assert base == tune.BASE and tune._results_path(args) == tmp_path / "hybrid_tuning_movielens.json"
    with pytest.raises(SystemExit):
        tune.parse_args(["--base", '{"n_folds": 6}'])  # no --tag: would mix two base fits in one file
    args, base = tune.parse_args(["--base", '{"n_folds": 6, "nbr_k": 50}', "--tag", "folds6", "--out-dir", "o"])
    assert base == {**tune.BASE, "n_folds": 6, "nbr_k": 50}
    assert tune._results_path(args) == Path("o") / "hybrid_tuning_movielens_folds6.json"
    for bad in (["--base", '{"n_fold": 6}', "--tag", "x"], ["--base", "[6]", "--tag", "x"], ["--tag", "../up"]):
        with pytest.raises(SystemExit):
            tune.parse_args(bad)


def test_a_state_of_another_base_fit_is_refused(tune, fitted, tmp_path):
    evaluator, state = fitted
    args, base = tune.parse_args(["--out-dir", str(tmp_path), "--trials", ""])  # BASE: 4 folds, larger pools
    with pytest.raises(SystemExit, match="not"):
        tune.tune(args, base, evaluator, state, 0.0, 0.0)
    assert not list(tmp_path.iterdir())  # nothing read, nothing written


def test_tagged_trials_get_their_file_paired_cis_and_validation_reads(tune, fitted, tmp_path):
    evaluator, state = fitted
    argv = ["--source", "synthetic", "--out-dir", str(tmp_path), "--base", _tiny_base(state, tune)]
    argv += ["--tag", "tiny", "--trials", "", "--extra", 'one:{"n_folds": 1}', "--extra", 'three:{"n_folds": 3}']
    args, base = tune.parse_args([*argv, "--paired-against", "three"])
    reads_before = len(evaluator.target_reads)
    assert tune.tune(args, base, evaluator, state, 0.0, 0.0) == 0

    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "hybrid_tuning_synthetic_tiny.json",
        "hybrid_tuning_synthetic_tiny.md",
        "test_reads_ledger.jsonl",
    ]
    out = json.loads((tmp_path / "hybrid_tuning_synthetic_tiny.json").read_text())
    assert out["tag"] == "tiny" and out["base_fit"]["n_folds"] == 3 and out["reference"]["model"] == "ease"
    by_name = {t["trial"]: t for t in out["trials"]}
    assert set(by_name) == {"one", "three"} and "paired_vs" not in by_name["three"]
    paired = by_name["one"]["paired_vs"]
    assert paired["trial"] == "three" and paired["ndcg"]["n_users"] == len(evaluator.eval_rows)
    assert paired["ndcg"]["mean_diff"] == pytest.approx(by_name["one"]["ndcg@10"] - by_name["three"]["ndcg@10"])
    assert "vs three" in (tmp_path / "hybrid_tuning_synthetic_tiny.md").read_text()

    ledger = [json.loads(line) for line in (tmp_path / "test_reads_ledger.jsonl").read_text().splitlines()]
    assert {e["split"] for e in ledger} == {"validation"} and {e["source"] for e in ledger} == {"synthetic"}
    assert [e["configurations"] for e in ledger] == [["three"], ["one"]]  # the paired reference runs first
    # EASE + two trials: each a read of the validation targets, all counted
    assert sum(e["count"] for e in ledger) == 3 == len(evaluator.target_reads) - reads_before

    # another tag on the same validation users reuses the EASE reference: one read per trial only
    args, base = tune.parse_args(argv[:6] + ["--tag", "again", "--trials", "", "--extra", 'one:{"n_folds": 1}'])
    tune.tune(args, base, evaluator, state, 0.0, 0.0)
    last = json.loads((tmp_path / "test_reads_ledger.jsonl").read_text().splitlines()[-1])
    assert last["count"] == 1 and len(evaluator.target_reads) - reads_before == 4
    assert (tmp_path / "hybrid_tuning_synthetic_again.json").exists()
