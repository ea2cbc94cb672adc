"""``rehearse up / apply / down`` as library calls (the CLI is a shell over these): render, patch, generate the
Secrets, translate, run, wait for readiness, and say what ran, where, and what was not rehearsed."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from smartreco import settings
from smartreco.containers import freshness
from smartreco.paths import project_root
from smartreco.rehearse import kubelet, patches, public_images, render, rollout, runner, secrets, seldon, translate
from smartreco.rehearse.translate import Plan

Log = Callable[[str], None]
DEFAULT_NAME = "smartreco-rehearsal"
OBJECTS_FILE = "objects.json"


def state_dir(name: str = DEFAULT_NAME) -> Path:
    return Path(settings.REHEARSAL_DIR.get()) / name


def prepare(
    objects: list[dict[str, Any]],
    *,
    name: str,
    replicas: int | None,
    models_patch: bool,
    made_secrets: secrets.SecretData,
    generation: str = "",
    skip: frozenset[str] = frozenset(),
    forwards: tuple[str, ...] = (),
) -> tuple[Plan, list[dict[str, Any]]]:
    """Patched objects -> the plan and the patched objects (pure; ``up``, ``apply`` and the unit tests share it).
    ``forwards``: ``SERVICE:HOST_PORT`` items (``up --forward``)."""
    patched, notes = patches.object_store_to_volume(objects)
    plan = translate.translate(
        patched,
        made_secrets,
        rehearsal=name,
        replicas=replicas,
        models_patch=models_patch,
        generation=generation,
        skip=skip,
    )
    plan.notes[:0] = notes
    for item in forwards:
        service, _, port = item.rpartition(":")
        if not service or not port.isdigit():
            raise translate.TranslationError(f"--forward {item!r}: expected SERVICE:HOST_PORT (e.g. mlflow:5000)")
        plan.notes.append(translate.add_forward(plan, service, int(port)))
    return plan, patched


def summary(plan: Plan, rehearsal: runner.Rehearsal | None, secrets_file: Path, seconds: float | None) -> dict:
    """What ``up --json`` prints: endpoints, where the Secrets are, each workload's containers, what is not
    rehearsed and what the rehearsal changed."""
    pods = rehearsal.pods if rehearsal is not None else {}
    eps = runner.endpoints(plan, pods) if pods else {}
    addresses = runner.service_addresses(plan, rehearsal.proxies) if rehearsal is not None else {}

    def first(key: str) -> str | None:
        """The Service's address (its proxy: ready pods only) as the host reaches it."""
        return addresses.get(key)

    graph = next((s.name for s in plan.services if s.selector.get("seldon-app") == s.name), None)
    workloads: dict[str, Any] = {}
    for workload, wpods in plan.workloads().items():
        workloads[workload] = [
            pods[p.name].describe()
            if p.name in pods
            else {"pod": p.name, "containers": [{"name": c.name, "image": c.image} for c in p.containers]}
            for p in wpods
        ]
    return {
        "rehearsal": plan.name,
        "namespace": plan.namespace,
        "ready_seconds": None if seconds is None else round(seconds, 1),
        "endpoints": {
            "graph_rest": f"http://{first(f'{graph}:http')}" if graph and first(f"{graph}:http") else None,
            "graph_grpc": first(f"{graph}:grpc") if graph else None,
            "mlflow": f"http://{first('mlflow:http')}" if first("mlflow:http") else None,
            "feast": f"http://{first('feast-feature-server:http')}" if first("feast-feature-server:http") else None,
            "redis": first("redis:redis"),
            "events": f"http://{first('smartreco-events:http')}" if first("smartreco-events:http") else None,
            "web": f"http://{first('smartreco-web:http')}" if first("smartreco-web:http") else None,
            "s3": f"not rehearsed: a volume stands in ({patches.OBJECT_STORE_MOUNT} in the pods that use it)",
            "forwards": {f"{p.name}:{pod}": f"127.0.0.1:{host}" for p in plan.pods for host, pod in p.forwards},
            "services": addresses,
            "pods": eps,
        },
        "kubelet": str(rehearsal.state_dir / kubelet.STATUS_FILE) if rehearsal is not None else None,
        "secrets_file": str(secrets_file),
        "images": public_images.table(public_images.plan_images(plan.pods)),
        "workloads": workloads,
        "not_rehearsed": [{"object": o, "why": why} for o, why in plan.not_rehearsed],
        "notes": plan.notes,
    }


def dry_run(
    overlay: str = "local",
    *,
    replicas: int | None = None,
    models_patch: bool = False,
    name: str = DEFAULT_NAME,
    skip: frozenset[str] = frozenset(),
    forwards: tuple[str, ...] = (),
) -> dict:
    """What ``up`` would run, without an engine: the summary and every ``docker`` command (environment values
    are not shown: ``--env NAME`` takes them from docker's environment; Secrets are generated but not kept)."""
    from smartreco.rehearse import docker_args

    objects = render.load_objects(render.render(overlay))
    made = secrets.generate(secrets.referenced(objects))
    plan, _ = prepare(
        objects,
        name=name,
        replicas=replicas,
        models_patch=models_patch,
        made_secrets=made,
        skip=skip,
        forwards=forwards,
    )
    commands = [["docker", *docker_args.network_create(plan)]]
    for pod in plan.pods:
        files = {v.name: state_dir(name) / "pods" / pod.name / v.name for v in pod.volumes.values() if v.files}
        commands.append(["docker", *docker_args.pause_run(plan, pod)])
        commands += [["docker", *docker_args.container_run(plan, pod, c, files)[0]] for c in pod.all_containers()]
    from smartreco import images

    script = Path(runner.__file__).with_name("service_proxy.py")
    for svc in plan.services:
        if svc.selector and svc.ports:
            run = docker_args.service_proxy_run(
                plan, svc, images.serving_image(), script, state_dir(name) / kubelet.ENDPOINTS_DIR
            )
            commands.append(["docker", *run])
    out = summary(plan, None, state_dir(name) / "secrets.json", None)
    out["docker"] = commands
    return out


def up(
    overlay: str = "local",
    *,
    replicas: int | None = None,
    models_dir: Path | None = None,
    name: str = DEFAULT_NAME,
    timeout_s: float = 900.0,
    skip: frozenset[str] = frozenset(),
    forwards: tuple[str, ...] = (),
    log: Log = print,
) -> dict:
    """Render ``overlay``, run it, wait until every pod is ready; on any failure (or Ctrl-C) remove what it
    started. Returns :func:`summary`."""
    objects = render.load_objects(render.render(overlay))
    folder = state_dir(name)
    made = secrets.generate(secrets.referenced(objects))
    secrets_file = secrets.write(folder, made)
    plan, patched = prepare(
        objects,
        name=name,
        replicas=replicas,
        models_patch=models_dir is not None,
        made_secrets=made,
        skip=skip,
        forwards=forwards,
    )
    # "rendered": as kubectl would have been given them (what a deploy patches), "objects": with the rehearsal's patches
    (folder / OBJECTS_FILE).write_text(json.dumps({"overlay": overlay, "objects": patched, "rendered": objects}))
    for row in public_images.table(public_images.plan_images(plan.pods)):
        log(f"[rehearse] image {row['manifest']} -> {row['rehearsal']} ({row['differs']})")
    sources = image_sources(plan)
    for src in sources:
        log(f"[rehearse] image {src['image']}: {src['note']}")
    for ident, why in plan.not_rehearsed:
        log(f"[rehearse] {ident}: {why}")
    for note in plan.notes:
        log(f"[rehearse] {note}")
    rehearsal = runner.Rehearsal(plan, folder, models_dir, log)
    start = time.monotonic()
    try:
        rehearsal.start()
        rehearsal.wait_ready(timeout_s)
        rehearsal.wait_services(max(timeout_s - (time.monotonic() - start), 60.0))
    except BaseException:
        log("[rehearse] removing what this rehearsal started")
        kubelet.stop(folder)
        runner.remove(name)
        raise
    seconds = time.monotonic() - start
    log(f"[rehearse] every pod ready and behind its Services in {seconds:.0f} s")
    out = summary(plan, rehearsal, secrets_file, seconds)
    out["image_sources"] = sources
    runner.save_state(folder, out)
    return out


def image_sources(plan: Plan) -> list[dict[str, str]]:
    """Whether each project image the plan runs holds this checkout's code (:mod:`smartreco.containers.freshness`):
    the rehearsal runs the engine's images as they are, so a stale one is said, not hidden."""
    used = {c.image for p in plan.pods for c in p.all_containers()}
    return [src.as_dict() for src in freshness.project_image_sources(project_root(), used)]


def down(name: str = DEFAULT_NAME, keep_data: bool = False) -> dict:
    """Stop its kubelet; remove every container, network and (unless ``keep_data``) volume of the rehearsal, and
    its Secrets."""
    folder = state_dir(name)
    kubelet.stop(folder)
    removed = runner.remove(name, keep_data=keep_data)
    if not keep_data and folder.exists():
        import shutil

        shutil.rmtree(folder)
    return removed


#: the apply process's writes to the kubelet's pods file (the rollout and the pods it is killing, in threads)
_SPEC_LOCK = threading.Lock()


def _spec_update(
    folder: Path,
    add: dict[str, Any] | None = None,
    terminating: Iterable[str] = (),
    drop: Iterable[str] = (),
) -> None:
    """The kubelet's pods file after an ``apply`` step (it reads it on its next pass)."""
    with _SPEC_LOCK:
        spec = kubelet.read_spec(folder) or {"pods": {}, "services": []}
        spec["pods"].update(add or {})
        for pod in terminating:
            if pod in spec["pods"]:
                spec["pods"][pod]["terminating"] = True
        for pod in drop:
            spec["pods"].pop(pod, None)
        kubelet.write_spec(folder, spec)


def _saved(name: str) -> tuple[Path, dict, dict]:
    folder = state_dir(name)
    try:
        saved = json.loads((folder / OBJECTS_FILE).read_text())
        made = json.loads((folder / "secrets.json").read_text())
    except FileNotFoundError:
        raise runner.RehearsalError(f"no rehearsal {name!r} is up (`smartreco rehearse up` first)") from None
    return folder, saved, made


def live_seldon(name: str = DEFAULT_NAME) -> dict[str, Any]:
    """The rehearsal's SeldonDeployment as the last ``up`` or ``apply`` was given it (without the rehearsal's
    patches): what ``kubectl get seldondeployment -o json`` returns on a cluster, for a deploy to patch."""
    _, saved, _ = _saved(name)
    found = [o for o in saved.get("rendered", saved["objects"]) if o.get("kind") == "SeldonDeployment"]
    if len(found) != 1:
        raise runner.RehearsalError(f"rehearsal {name!r}: expected one SeldonDeployment, found {len(found)}")
    return found[0]


def apply(
    file: Path, *, name: str = DEFAULT_NAME, models_dir: Path | None = None, timeout_s: float = 900.0, log: Log = print
) -> dict:
    """``kubectl apply -f FILE`` for the SeldonDeployment of a running rehearsal, rolled out as the Deployment the
    Seldon operator makes for the predictor is (:mod:`smartreco.rehearse.rollout`): at most ``surge`` new pods
    start at a time, each batch ready and in its Service before old pods are deleted, never fewer ready pods than
    ``replicas - unavailable``. A deleted old pod is terminated as on a cluster (:func:`_retire`): it leaves the
    Service while it is killed (preStop hooks, then SIGTERM, SIGKILL after the grace period), and the rollout goes
    on without waiting for it; ``apply`` returns once every old pod is gone. If a batch does not become ready, its
    pods are removed and the pods serving now (the old ones left and the new ones already rolled) keep serving, as
    a stuck Deployment keeps them. The predictor's pods roll as one Deployment (the overlays have one predictor)."""
    folder, saved, made = _saved(name)
    new = [o for o in render.load_file(file) if o.get("kind") == "SeldonDeployment"]
    if len(new) != 1:
        raise runner.RehearsalError(f"{file}: expected one SeldonDeployment, found {len(new)}")
    kept = [o for o in saved["objects"] if o.get("kind") not in translate.WORKLOAD_KINDS]
    sdep = dict(new[0])
    sdep.setdefault("metadata", {}).setdefault(
        "namespace",
        next((o["metadata"].get("namespace") for o in kept if (o.get("metadata") or {}).get("namespace")), "default"),
    )
    plan, patched = prepare(
        [*kept, sdep],
        name=name,
        replicas=None,
        models_patch=models_dir is not None,
        made_secrets=made,
        generation=f"-g{int(time.time())}",
    )
    plan.pods = [p for p in plan.pods if p.workload.startswith("SeldonDeployment/")]
    running_old = runner.workload_pods(name, f"SeldonDeployment/{sdep['metadata']['name']}")
    replicas = len(plan.pods)
    surge, unavailable = rollout.fenceposts(replicas)
    log(
        f"[rehearse] rolling update as the operator's Deployment does: {replicas} replica(s), maxSurge "
        f"{rollout.DEFAULT_MAX_SURGE} -> {surge}, maxUnavailable {rollout.SELDON_MAX_UNAVAILABLE} -> {unavailable} "
        f"({len(running_old)} old pod(s))"
    )
    began = time.monotonic()
    rolled = runner.Rehearsal(plan, folder, models_dir, log)  # the new pods ready and in their Services
    old, waiting, seconds = list(running_old), list(plan.pods), 0.0
    ready: list[str] = []  # new pods ready and in their Services
    pending: list[runner.Rehearsal] = []  # batches started, not yet ready
    killing: list[threading.Thread] = []  # old pods being terminated
    try:
        while old or waiting or pending:
            step = rollout.next_step(replicas, surge, unavailable, len(old), replicas - len(waiting), len(ready))
            if step.start:
                batch = runner.Rehearsal(replace(plan, pods=waiting[: step.start]), folder, models_dir, log)
                del waiting[: step.start]
                pending.append(batch)
                try:
                    t0 = time.monotonic()
                    batch.start_more()
                    _spec_update(folder, add=runner.pod_specs(batch.pods))
                    names = ", ".join(p.name for p in batch.plan.pods)
                    log(f"[rehearse] {names} started in {time.monotonic() - t0:.0f} s")
                except BaseException:
                    _give_up(folder, name, plan, ready, old, log)
                    raise
            if step.remove:
                gone, old = old[: step.remove], old[step.remove :]
                killing += _retire(folder, name, gone, log)
            if step.start or step.remove:
                continue
            if not pending:
                raise runner.RehearsalError(f"rollout of {replicas} stalled with {len(old)} old pod(s) left")
            try:
                for batch in pending:  # in their Service before any old pod leaves it: no moment without an endpoint
                    took = batch.wait_ready(max(timeout_s - (time.monotonic() - began), 60.0))
                    took += batch.wait_services(max(timeout_s - (time.monotonic() - began), 60.0))
                    seconds += took
                    rolled.pods.update(batch.pods)
                    ready += [p.name for p in batch.plan.pods]
                    names = ", ".join(p.name for p in batch.plan.pods)
                    log(f"[rehearse] {names} ready and in the Service in {took:.0f} s")
            except BaseException:
                _give_up(folder, name, plan, ready, old, log)
                raise
            pending.clear()
        rolled_s = time.monotonic() - began  # what `kubectl rollout status` waits for: new pods available, old deleted
    finally:
        for thread in killing:  # the Deployment controller does not wait for terminating pods; apply does, at the end
            thread.join()
    rolled.wait_services(120.0, absent=frozenset(running_old))
    # the applied object is now the live one (the next deploy patches it), as the API server would keep it
    for key, applied in (
        ("rendered", sdep),
        ("objects", next(o for o in patched if o.get("kind") == "SeldonDeployment")),
    ):
        saved[key] = [o for o in saved.get(key, saved["objects"]) if o.get("kind") != "SeldonDeployment"] + [applied]
    (folder / OBJECTS_FILE).write_text(json.dumps(saved))
    total = time.monotonic() - began
    log(
        f"[rehearse] rolled out {seldon.service_name(sdep, (sdep.get('spec') or {}).get('predictors', [{}])[0])}: "
        f"new pods ready in {seconds:.0f} s, rollout {rolled_s:.0f} s, {len(running_old)} old pod(s) gone after "
        f"{total:.0f} s"
    )
    return {
        "ready_seconds": round(seconds, 1),
        "rollout_seconds": round(rolled_s, 1),
        "terminated_seconds": round(total, 1),
        "new_pods": [p.name for p in plan.pods],
        "removed": running_old,
        "surge": surge,
        "unavailable": unavailable,
    }


def _retire(folder: Path, name: str, pods: list[str], log: Log) -> list[threading.Thread]:
    """Old pods deleted as the Deployment controller deletes them. The deletion is one event that two parties act on
    at once, neither waiting for the other: the Endpoints controller takes the pods out of every Service (here the
    kubelet's next pass, then the proxies' next look at their file) and the kubelet kills them
    (:func:`runner.terminate_pod`: each container's preStop hook, then SIGTERM, SIGKILL after the grace period).
    So a container without a preStop hook may stop listening before its Service stops sending to it, as on a
    cluster. The kills run in threads (returned): the rollout's next step does not wait for them."""
    spec = (kubelet.read_spec(folder) or {}).get("pods") or {}
    entries = {pod: spec.get(pod) for pod in pods}
    _spec_update(folder, terminating=set(pods))
    threads = []
    for pod in pods:
        thread = threading.Thread(
            target=_terminate, args=(folder, name, pod, entries[pod], log), name=f"terminate-{pod}", daemon=True
        )
        thread.start()
        threads.append(thread)
    log(f"[rehearse] old pod(s) {', '.join(pods)} deleted: leaving the Service and terminating")
    return threads


def _terminate(folder: Path, name: str, pod: str, entry: dict[str, Any] | None, log: Log) -> None:
    took = runner.terminate_pod(name, pod, entry)
    _spec_update(folder, drop={pod})
    log(f"[rehearse] old pod {pod} terminated in {took:.0f} s")


def _give_up(folder: Path, name: str, plan: Plan, ready: list[str], old: list[str], log: Log) -> None:
    """A batch did not become ready: remove every new pod not yet rolled; the serving ones keep serving."""
    log(
        "[rehearse] the new predictor pods did not become ready; the old ones keep serving "
        f"({len(old)} old, {len(ready)} new already in the Service)"
    )
    left = [p.name for p in plan.pods if p.name not in ready]
    _spec_update(folder, drop=set(left))
    for pod_name in left:
        runner.remove_pod(name, pod_name)
