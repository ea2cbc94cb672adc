"""Experiment design, log analysis, report and CLI, plus the replay simulator on a small synthetic world."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from smartreco.cli import main
from smartreco.errors import DataError
from smartreco.experiments.analysis import analyse
from smartreco.experiments.design import Experiment, Variant, create_experiment
from smartreco.experiments.report import write_report
from smartreco.feedback import FeedbackLog, read_dataset
from smartreco.models.base import Recommender

pytestmark = [pytest.mark.unit]
START = datetime(2026, 3, 1, tzinfo=UTC)


def test_allocation_must_sum_to_one_and_errors_name_the_field():
    with pytest.raises(DataError, match="sum to 1"):
        create_experiment("x", {"a": 0.5, "b": 0.4})
    with pytest.raises(DataError, match="at least two"):
        create_experiment("x", {"a": 1.0})
    with pytest.raises(DataError, match="success_metric"):
        create_experiment("x", {"a": 0.5, "b": 0.5}, success_metric="revenue")
    with pytest.raises(DataError, match="unknown field"):
        Experiment.from_dict({"name": "x", "variants": [], "colour": 1})


def test_assignment_is_consistent_and_follows_the_allocation(tmp_path):
    exp = create_experiment("ranker-v2", {"a": 0.7, "b": 0.3}, baseline_rate=0.1, mde=0.1)
    assert exp.min_sample_size and exp.min_sample_size > 10_000
    users = [f"u{i}" for i in range(20_000)]
    arms = exp.assign_many(users)
    assert [exp.assign(u) for u in users[:200]] == list(arms[:200])
    share = (arms == "a").mean()
    assert abs(share - 0.7) < 3 * np.sqrt(0.21 / len(users))
    again = Experiment.load(exp.save(tmp_path / "e.json"))
    assert list(again.assign_many(users[:500])) == list(arms[:500])
    other = create_experiment("another", {"a": 0.7, "b": 0.3})
    assert (other.assign_many(users) != arms).mean() > 0.3  # independent experiments, independent splits


def write_logs(path, rates: dict[str, float], n_per_arm: dict[str, int], days: int = 7, seed: int = 0):
    """Impressions + clicks with known per-arm CTRs; some clicks are sent twice (retries)."""
    rng = np.random.default_rng(seed)
    with FeedbackLog(path, fsync=False) as log:
        for arm, n in n_per_arm.items():
            ts = [START + timedelta(seconds=float(s)) for s in rng.uniform(0, days * 86_400, n)]
            log.append_many(
                [
                    {
                        "request_id": f"{arm}{i}",
                        "user_id": f"u{i % 3000}",
                        "variant": arm,
                        "items": ["1", "2", "3"],
                        "ts": t,
                    }
                    for i, t in enumerate(ts)
                ],
                kind="impression",
            )
            clicked = np.flatnonzero(rng.random(n) < rates[arm])
            fbs = [
                {
                    "feedback_id": f"{arm}{i}-c",
                    "request_id": f"{arm}{i}",
                    "user_id": f"u{i % 3000}",
                    "item_id": "2",
                    "interaction_type": "click",
                    "reward": 1.0,
                    "ts": ts[i],
                }
                for i in clicked
            ]
            log.append_many(fbs + fbs[: len(fbs) // 10])


def test_analysis_finds_a_real_lift_and_recommends_shipping(tmp_path):
    write_logs(tmp_path, {"a": 0.10, "b": 0.13}, {"a": 6000, "b": 6000})
    exp = create_experiment("t", {"a": 0.5, "b": 0.5}, baseline_rate=0.1, mde=0.3)
    res = analyse(read_dataset(tmp_path), exp)
    s = res.summary
    assert s["arms"]["a"]["impressions"] == 6000 and abs(s["arms"]["b"]["ctr"] - 0.13) < 0.015
    comp = s["comparisons"][0]
    assert comp["decision"] == "ship" and s["recommendation"].startswith("Ship b")
    assert comp["ztest"]["p_value"] < 1e-4 and comp["sequential"]["p_value"] < 0.05
    assert comp["relative_lift_ci"][0] < comp["relative_lift"] < comp["relative_lift_ci"][1]
    assert comp["cohens_h"] > 0 and comp["welch_reward"]["difference"] > 0
    assert not s["srm"]["mismatch"]
    assert s["counts"]["feedback_unattributed"] == 0
    paths = write_report(res, tmp_path / "report")
    html = paths["html"].read_text()
    assert html.count("data:image/png;base64,") == 3 and "Ship b" in html
    assert json.loads(paths["json"].read_text())["comparisons"][0]["decision"] == "ship"


def test_aa_logs_do_not_ship_and_an_srm_blocks_the_decision(tmp_path):
    write_logs(tmp_path / "aa", {"a": 0.1, "b": 0.1}, {"a": 3000, "b": 3000}, seed=1)
    exp = create_experiment("t", {"a": 0.5, "b": 0.5}, baseline_rate=0.1, mde=0.05)
    assert analyse(read_dataset(tmp_path / "aa"), exp).summary["comparisons"][0]["decision"] == "continue"
    write_logs(tmp_path / "srm", {"a": 0.1, "b": 0.2}, {"a": 3000, "b": 2400}, seed=2)
    s = analyse(read_dataset(tmp_path / "srm"), exp).summary
    assert s["srm"]["mismatch"] and s["comparisons"][0]["decision"] == "invalid"
    assert "sample-ratio mismatch" in s["recommendation"]


def test_analysis_rejects_logs_that_do_not_fit_the_experiment(tmp_path):
    write_logs(tmp_path, {"a": 0.1, "c": 0.1}, {"a": 100, "c": 100})
    with pytest.raises(DataError, match="variant"):
        analyse(read_dataset(tmp_path), create_experiment("t", {"a": 0.5, "b": 0.5}))


def test_cli_ab_report_writes_html_and_json_and_fails_cleanly(tmp_path, capsys):
    logs = tmp_path / "feedback"
    write_logs(logs, {"a": 0.1, "b": 0.1}, {"a": 500, "b": 500})
    create_experiment("cli", {"a": 0.5, "b": 0.5}).save(tmp_path / "experiment.json")
    assert main(["ab", "report", "--logs", str(logs), "--out", str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["experiment"]["name"] == "cli" and (tmp_path / "out" / "report.html").exists()
    assert main(["ab", "report", "--logs", str(tmp_path / "missing"), "--out", str(tmp_path / "o2")]) == 1
    assert "not a directory" in capsys.readouterr().err


class _Popular(Recommender):
    name = "popular"

    def fit(self, data):
        self.scores = np.asarray(data.matrix.matrix.sum(axis=0)).ravel().astype(np.float32)
        return self

    def score_users(self, user_rows):
        return np.tile(self.scores, (len(user_rows), 1))


class _Random(Recommender):
    name = "random"

    def fit(self, data):
        self.n = data.matrix.n_items
        return self

    def score_users(self, user_rows):
        return (
            np.random.default_rng(int(np.sum(user_rows))).random((len(user_rows), self.n)).astype(np.float32)
        )


@pytest.fixture(scope="module")
def world():
    from smartreco.data.synthetic import generate_in_memory

    return generate_in_memory(n_users=300, n_items=300, n_interactions=15_000, seed=3)


@pytest.mark.parametrize("routing", ["fixed", "thompson"])
def test_simulator_replays_holdout_through_the_log_and_the_better_model_wins(tmp_path, world, routing):
    from smartreco.experiments.simulate import SimulationConfig, simulate_ab

    cfg = SimulationConfig(days=6, visits_per_day=250, routing=routing, fsync=False, seed=1)
    res = simulate_ab(world, _Popular(), _Random(), tmp_path, cfg)
    arms = res["arms"]
    assert sum(a["impressions"] for a in arms.values()) == 6 * 250
    ctr = {k: v["clicks"] / max(v["impressions"], 1) for k, v in arms.items()}
    assert ctr["popular"] > ctr["random"]  # popularity beats random on held-out positives
    if routing == "thompson":
        assert arms["popular"]["impressions"] > arms["random"]["impressions"]  # the bandit shifted traffic
    exp = Experiment.load(tmp_path / "experiment.json")
    s = analyse(read_dataset(tmp_path / "feedback"), exp).summary
    assert s["arms"]["popular"]["impressions"] == arms["popular"]["impressions"]
    assert ("skipped" in s["srm"]) == (routing == "thompson")


def test_variant_dataclass_round_trip():
    exp = Experiment(name="x", variants=[{"name": "a", "allocation": 0.5}, Variant("b", 0.5)])
    assert Experiment.from_dict(json.loads(json.dumps(exp.to_dict()))).names == ["a", "b"]
