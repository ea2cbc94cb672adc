"""Consistent hashing and bandit policies/stores behind the ABRouter."""

import random
import subprocess
import sys

import pytest

from smartreco.experiments.assignment import assign, assign_ratio, bucket
from smartreco.experiments.bandits import ArmStats, SQLiteArmStore, epsilon_greedy, thompson

pytestmark = [pytest.mark.unit]


def test_bucket_is_stable_across_processes_unlike_hash():
    code = "from smartreco.experiments.assignment import bucket; print(repr(bucket('42', 'exp')))"
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": str(seed), "PATH": ""},
        ).stdout.strip()
        for seed in (1, 2)
    }
    assert outs == {repr(bucket("42", "exp"))}


def test_ratio_split_is_close_to_ratio_and_salt_changes_assignment():
    users = [str(u) for u in range(5000)]
    share_a = sum(assign_ratio(u, 0.3, "exp") == 0 for u in users) / len(users)
    assert 0.27 < share_a < 0.33
    differ = sum(assign_ratio(u, 0.5, "exp1") != assign_ratio(u, 0.5, "exp2") for u in users)
    assert differ > 1000
    assert all(assign_ratio(u, 0.0) == 1 for u in users[:100])
    assert all(assign_ratio(u, 1.0) == 0 for u in users[:100])


def test_assign_weights_and_bad_input():
    counts = [0, 0, 0]
    for u in range(3000):
        counts[assign(str(u), [1, 1, 2])] += 1
    assert counts[2] > counts[0] and counts[2] > counts[1]
    with pytest.raises(ValueError, match="ratio_a"):
        assign_ratio("1", 1.5)
    with pytest.raises(ValueError, match="weights"):
        assign("1", [])


def test_epsilon_greedy_exploits_best_arm():
    rng = random.Random(0)
    stats = [ArmStats(pulls=100, reward_sum=10.0), ArmStats(pulls=100, reward_sum=60.0)]
    picks = [epsilon_greedy(stats, 0.1, rng) for _ in range(1000)]
    assert 0.9 < picks.count(1) / 1000 < 0.99
    assert epsilon_greedy([ArmStats(pulls=5, reward_sum=5), ArmStats()], 0.0, rng) == 1  # untried first


def test_thompson_prefers_arm_with_more_successes():
    rng = random.Random(0)
    stats = [ArmStats(pulls=200, successes=20, failures=180), ArmStats(pulls=200, successes=80, failures=120)]
    picks = [thompson(stats, rng) for _ in range(500)]
    assert picks.count(1) > 480


def test_sqlite_store_survives_reopen_and_shares_between_processes(tmp_path):
    path = tmp_path / "arms.sqlite"
    store = SQLiteArmStore(path, "exp")
    store.record_served("a")
    store.record_reward("a", 1.0)
    store.record_reward("a", 0.0)
    code = (
        "import sys; from smartreco.experiments.bandits import SQLiteArmStore; "
        "SQLiteArmStore(sys.argv[1], 'exp').record_reward('b', 4.0)"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)
    stats = SQLiteArmStore(path, "exp").stats(["a", "b", "c"])  # a "restart"
    assert stats["a"] == ArmStats(served=1, pulls=2, reward_sum=1.0, successes=1.0, failures=1.0)
    assert stats["b"].pulls == 1 and stats["b"].reward_sum == 4.0 and stats["b"].successes == 1.0
    assert stats["c"] == ArmStats()
    assert SQLiteArmStore(path, "other").stats(["a"])["a"].pulls == 0  # experiments are separate
