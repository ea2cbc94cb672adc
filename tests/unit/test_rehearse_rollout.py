"""``rehearse apply``'s rollout pace (smartreco/rehearse/rollout.py) and ``session.apply`` stepping through it, with
the engine side faked: the fenceposts as Kubernetes resolves them, and a 2-replica rollout that starts one new pod
at a time and never has fewer than 2 pods in the Service (the Deployment the Seldon operator makes)."""

from __future__ import annotations

import json

import pytest
import yaml

from smartreco.rehearse import rollout
from smartreco.rehearse.rollout import Step

pytestmark = [pytest.mark.unit]


# ----------------------------------------------------------------------------------------- fenceposts
@pytest.mark.parametrize(
    ("replicas", "want"),
    [
        (1, (1, 0)),  # 25% of 1 rounds up to 1, 10% rounds down to 0
        (2, (1, 0)),  # one new pod at a time, never below 2 ready
        (4, (1, 0)),
        (5, (2, 0)),  # 1.25 -> 2
        (10, (3, 1)),  # 2.5 -> 3, 1.0 -> 1
        (20, (5, 2)),
    ],
)
def test_fenceposts_of_the_seldon_operators_deployment(replicas: int, want: tuple[int, int]) -> None:
    assert rollout.fenceposts(replicas) == want


def test_fenceposts_rounding_and_the_zero_zero_case() -> None:
    assert rollout.fenceposts(3, "50%", "50%") == (2, 1)  # surge up, unavailable down
    assert rollout.fenceposts(3, 2, 1) == (2, 1)  # ints as they are
    assert rollout.fenceposts(3, "0", "0%") == (0, 1)  # both 0: Kubernetes makes unavailable 1
    assert rollout.fenceposts(2, "0%", "10%") == (0, 1)


def _simulate(replicas: int, old: int, surge: int, unavailable: int) -> tuple[list[Step], int, int]:
    """Run the steps, returning them and the lowest count of available pods and the highest count of pods."""
    steps = rollout.plan_steps(replicas, old, surge, unavailable)
    lowest, highest, started = old, old, 0
    for step in steps:
        started += step.start
        highest = max(highest, old + started)
        old -= step.remove
        # a removal counts only pods already available (plan_steps: started pods are ready before the next step)
        lowest = min(lowest, old + started - step.start)
    return steps, lowest, highest


def test_two_replicas_roll_one_pod_at_a_time_never_below_two() -> None:
    steps, lowest, highest = _simulate(2, 2, *rollout.fenceposts(2))
    assert steps == [Step(1, 0), Step(0, 1), Step(1, 0), Step(0, 1)]
    assert lowest == 2 and highest == 3


@pytest.mark.parametrize(("replicas", "old"), [(1, 1), (2, 2), (3, 3), (5, 5), (10, 10), (2, 1), (1, 2), (3, 0)])
def test_every_rollout_ends_with_the_new_replicas_within_its_fenceposts(replicas: int, old: int) -> None:
    surge, unavailable = rollout.fenceposts(replicas)
    steps, lowest, highest = _simulate(replicas, old, surge, unavailable)
    assert sum(s.start for s in steps) == replicas and sum(s.remove for s in steps) == old
    assert highest <= max(old, replicas + surge)
    assert lowest >= min(old, replicas - unavailable)


def test_surge_zero_removes_first() -> None:
    assert rollout.plan_steps(2, 2, 0, 1) == [Step(0, 1), Step(1, 0), Step(0, 1), Step(1, 0)]


def test_next_step_waits_for_a_started_pod() -> None:
    assert rollout.next_step(2, 1, 0, old=2, new_started=1, new_ready=0) == Step(0, 0)
    assert rollout.next_step(2, 1, 0, old=2, new_started=1, new_ready=1) == Step(0, 1)


# ------------------------------------------------------------------------------- apply, engine faked
@pytest.fixture
def production_rehearsal(manifest_tools, tmp_path, monkeypatch):  # noqa: ARG001 - rendering needs kubectl
    """A production-overlay rehearsal with 2 predictor replicas as ``rehearse up`` leaves its state, an applied
    file asking for 2 replicas, and the engine side recorded instead of run."""
    from smartreco.rehearse import render, runner, secrets, session

    monkeypatch.setenv("SMARTRECO_REHEARSAL_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(session, "DRAIN_S", 0.0)
    objects = render.load_objects(render.render("production"))
    made = secrets.generate(secrets.referenced(objects))
    folder = session.state_dir("rh")
    secrets.write(folder, made)
    _, patched = session.prepare(objects, name="rh", replicas=2, models_patch=False, made_secrets=made)
    (folder / session.OBJECTS_FILE).write_text(json.dumps({"overlay": "production", "objects": patched}))
    sdep = session.live_seldon("rh")
    sdep["spec"]["predictors"][0]["replicas"] = 2
    applied = tmp_path / "sdep.yaml"
    applied.write_text(yaml.safe_dump(sdep))

    old = ["smartreco-default-0", "smartreco-default-1"]
    state = {"events": [], "serving": set(old), "counts": [], "fail_on": None}

    def record(kind: str, what) -> None:
        state["events"].append((kind, what))
        state["counts"].append(len(state["serving"]))

    def start_more(self) -> None:
        for pod in self.plan.pods:
            self.pods[pod.name] = runner.RunningPod(
                pod, f"rh-{pod.name}", "10.0.0.9", {c.name: "x" for c in pod.containers}
            )
        record("start", [p.name for p in self.plan.pods])

    def wait_ready(self, timeout_s: float) -> float:
        if state["fail_on"] is not None and any(p.endswith(state["fail_on"]) for p in self.pods):
            raise runner.RehearsalError("not ready")
        return 1.0

    def wait_services(self, timeout_s: float, absent: frozenset[str] = frozenset()) -> float:
        if absent:
            state["serving"] -= set(absent)
            record("out", sorted(absent))
        else:
            state["serving"] |= set(self.pods)
            record("in", sorted(self.pods))
        return 0.5

    monkeypatch.setattr(runner.Rehearsal, "start_more", start_more)
    monkeypatch.setattr(runner.Rehearsal, "wait_ready", wait_ready)
    monkeypatch.setattr(runner.Rehearsal, "wait_services", wait_services)
    monkeypatch.setattr(runner, "workload_pods", lambda name, workload: list(old))
    monkeypatch.setattr(runner, "remove_pod", lambda name, pod: record("remove", pod))
    return applied, state


def test_apply_rolls_two_replicas_one_pod_at_a_time(production_rehearsal) -> None:
    from smartreco.rehearse import session

    applied, state = production_rehearsal
    lines: list[str] = []
    out = session.apply(applied, name="rh", log=lines.append)
    new = out["new_pods"]
    assert (
        len(new) == 2
        and all("-g" in p for p in new)
        and out["removed"] == ["smartreco-default-0", "smartreco-default-1"]
    )
    assert (out["surge"], out["unavailable"]) == (1, 0) and out["ready_seconds"] == 3.0  # 2 x (1.0 + 0.5)
    kinds = [(k, w) for k, w in state["events"] if k != "in" or w]  # 'in' with no new pod: an old-only wait
    assert kinds == [
        ("start", [new[0]]),
        ("in", [new[0]]),
        ("out", ["smartreco-default-0"]),
        ("remove", "smartreco-default-0"),
        ("start", [new[1]]),
        ("in", [new[1]]),
        ("out", ["smartreco-default-1"]),
        ("remove", "smartreco-default-1"),
    ]
    assert min(state["counts"]) >= 2 and max(state["counts"]) <= 3
    assert state["serving"] == set(new)
    assert any("maxSurge 25% -> 1, maxUnavailable 10% -> 0" in line for line in lines)
    assert any(line.startswith("[rehearse] rolled out smartreco-default: new pods ready in 3 s") for line in lines)


def test_apply_failing_batch_leaves_the_serving_pods_serving(production_rehearsal) -> None:
    from smartreco.rehearse import runner, session

    applied, state = production_rehearsal
    state["fail_on"] = "-1"  # the second new pod never becomes ready
    lines: list[str] = []
    with pytest.raises(runner.RehearsalError, match="not ready"):
        session.apply(applied, name="rh", log=lines.append)
    started = [w for k, w in state["events"] if k == "start"]
    removed = [w for k, w in state["events"] if k == "remove"]
    # the first new pod rolled and replaced one old pod; the failing one is removed; the other old pod keeps serving
    assert removed == ["smartreco-default-0", started[1][0]]
    assert state["serving"] == {"smartreco-default-1", started[0][0]}
    assert any("the old ones keep serving (1 old, 1 new already in the Service)" in line for line in lines)
    assert json.loads((session.state_dir("rh") / session.OBJECTS_FILE).read_text()).get("rendered") is None
