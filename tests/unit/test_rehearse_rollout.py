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
    """A production-overlay rehearsal with 2 predictor replicas as ``rehearse up`` leaves its state (the objects
    and the kubelet's pods file), an applied file asking for 2 replicas, and the engine side recorded instead of
    run. A pod counts as serving once it is in the pods file, not terminating, and (a new pod) in its Service."""
    from smartreco.rehearse import kubelet, render, runner, secrets, session

    monkeypatch.setenv("SMARTRECO_REHEARSAL_DIR", str(tmp_path / "state"))
    objects = render.load_objects(render.render("production"))
    made = secrets.generate(secrets.referenced(objects))
    folder = session.state_dir("rh")
    secrets.write(folder, made)
    plan, patched = session.prepare(objects, name="rh", replicas=2, models_patch=False, made_secrets=made)
    (folder / session.OBJECTS_FILE).write_text(json.dumps({"overlay": "production", "objects": patched}))
    old = ["smartreco-default-0", "smartreco-default-1"]
    up_pods = {
        p.name: runner.RunningPod(
            p, f"rh-{p.name}", f"10.0.0.{i}", {c.name: f"rh-{p.name}-{c.name}" for c in p.containers}
        )
        for i, p in enumerate(p for p in plan.pods if p.name in old)
    }
    kubelet.write_spec(folder, {"pods": runner.pod_specs(up_pods), "services": runner.service_specs(plan)})
    sdep = session.live_seldon("rh")
    sdep["spec"]["predictors"][0]["replicas"] = 2
    applied = tmp_path / "sdep.yaml"
    applied.write_text(yaml.safe_dump(sdep))

    state = {"events": [], "in_service": set(old), "counts": [], "fail_on": None, "kills": {}}

    def serving() -> set[str]:
        pods = (kubelet.read_spec(folder) or {}).get("pods") or {}
        return {p for p, e in pods.items() if not e.get("terminating") and p in state["in_service"]}

    def record(kind: str, what) -> None:
        state["events"].append((kind, what))
        state["counts"].append(len(serving()))

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
        if not absent:
            state["in_service"] |= set(self.pods)
            record("in", sorted(self.pods))
        return 0.5

    def terminate_pod(name: str, pod: str, entry: dict | None) -> float:
        # killed while its Service drops it: the pods file already says terminating, nobody waited for the Service
        spec = kubelet.read_spec(folder) or {}
        state["kills"][pod] = {"entry": entry, "terminating": spec["pods"][pod]["terminating"]}
        record("kill", pod)
        return 30.0

    monkeypatch.setattr(runner.Rehearsal, "start_more", start_more)
    monkeypatch.setattr(runner.Rehearsal, "wait_ready", wait_ready)
    monkeypatch.setattr(runner.Rehearsal, "wait_services", wait_services)
    monkeypatch.setattr(runner, "workload_pods", lambda name, workload: list(old))
    monkeypatch.setattr(runner, "terminate_pod", terminate_pod)
    monkeypatch.setattr(runner, "remove_pod", lambda name, pod: record("remove", pod))
    return applied, state


def test_apply_rolls_two_replicas_one_pod_at_a_time(production_rehearsal) -> None:
    from smartreco.rehearse import kubelet, session

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
    starts = [w for k, w in state["events"] if k == "start"]
    assert starts == [[new[0]], [new[1]]]
    ins = [w for k, w in state["events"] if k == "in"]
    assert ins == [[new[0]], [new[1]]]
    # each old pod is deleted only after a new one is in the Service, and never below 2 serving pods
    order = [(k, w if isinstance(w, str) else w[0]) for k, w in state["events"] if k in ("in", "kill")]
    assert order.index(("in", new[0])) < order.index(("kill", "smartreco-default-0"))
    assert order.index(("in", new[1])) < order.index(("kill", "smartreco-default-1"))
    assert min(state["counts"]) >= 2 and max(state["counts"]) <= 3
    # killed as marked terminating (the Service drops it on the kubelet's next pass), with the pod's entry: the
    # graph nodes' preStop hooks (the operator's sleep 10), none on the executor
    for pod in ("smartreco-default-0", "smartreco-default-1"):
        kill = state["kills"][pod]
        assert kill["terminating"] is True
        hooks = {c["name"]: c["pre_stop"] for c in kill["entry"]["containers"]}
        assert hooks["seldon-container-engine"] is None
        assert hooks["cf-a"]["kind"] == "exec" and hooks["cf-a"]["command"] == ["/bin/sh", "-c", "/bin/sleep 10"]
        assert kill["entry"]["grace_s"] == 30
    pods = (kubelet.read_spec(session.state_dir("rh")) or {})["pods"]
    assert set(pods) == set(new)  # the terminated pods are gone from the kubelet's pods file
    assert any("maxSurge 25% -> 1, maxUnavailable 10% -> 0" in line for line in lines)
    assert any(line.startswith("[rehearse] rolled out smartreco-default: new pods ready in 3 s") for line in lines)
    assert out["terminated_seconds"] >= out["rollout_seconds"]


def test_apply_does_not_wait_for_terminating_pods(production_rehearsal, monkeypatch) -> None:
    """The Deployment controller counts a deleted pod as gone: the second new pod starts while the first old pod
    is still being killed (its preStop hooks and grace period), and apply returns only once both are gone."""
    import threading

    from smartreco.rehearse import runner, session

    applied, state = production_rehearsal
    second_started = threading.Event()
    waited: dict[str, bool] = {}
    fake_kill = runner.terminate_pod
    fake_start = runner.Rehearsal.start_more

    def start_more(self) -> None:
        fake_start(self)
        if any(p.name.endswith("-1") for p in self.plan.pods):
            second_started.set()

    def terminate_pod(name: str, pod: str, entry: dict | None) -> float:
        if pod == "smartreco-default-0":  # still terminating when the rollout's next step comes
            waited[pod] = second_started.wait(timeout=20)
        return fake_kill(name, pod, entry)

    monkeypatch.setattr(runner.Rehearsal, "start_more", start_more)
    monkeypatch.setattr(runner, "terminate_pod", terminate_pod)
    out = session.apply(applied, name="rh", log=lambda line: None)
    assert waited == {"smartreco-default-0": True}
    assert set(state["kills"]) == set(out["removed"])  # both terminated before apply returned


def test_apply_failing_batch_leaves_the_serving_pods_serving(production_rehearsal) -> None:
    from smartreco.rehearse import kubelet, runner, session

    applied, state = production_rehearsal
    state["fail_on"] = "-1"  # the second new pod never becomes ready
    lines: list[str] = []
    with pytest.raises(runner.RehearsalError, match="not ready"):
        session.apply(applied, name="rh", log=lines.append)
    started = [w for k, w in state["events"] if k == "start"]
    killed = [w for k, w in state["events"] if k == "kill"]
    removed = [w for k, w in state["events"] if k == "remove"]
    # the first new pod rolled and replaced one old pod; the failing one is removed; the other old pod keeps serving
    assert killed == ["smartreco-default-0"] and removed == [started[1][0]]
    pods = (kubelet.read_spec(session.state_dir("rh")) or {})["pods"]
    assert set(pods) == {"smartreco-default-1", started[0][0]} and not any(p.get("terminating") for p in pods.values())
    assert any("the old ones keep serving (1 old, 1 new already in the Service)" in line for line in lines)
    assert json.loads((session.state_dir("rh") / session.OBJECTS_FILE).read_text()).get("rendered") is None
