"""A translated pod as ``docker`` arguments (pure): the pod's sandbox ("pause") container holding the network
and IPC namespaces, on the rehearsal's network with the pod's Service names as aliases, and each container
joined to it (``--network container:<pause>``), so a pod's containers share ``127.0.0.1`` as on a cluster.

Environment values never appear in the arguments: each variable is passed as ``--env NAME`` and its value
through the ``docker`` process's own environment (:func:`container_run`'s second result), so generated
passwords do not show in ``ps``. A Secret the manifest itself expands into ``args`` (``$(REDIS_PASSWORD)``,
``$(PG_PASSWORD)``) is in the command line, as the kubelet puts it into the process's argv."""

from __future__ import annotations

import math
from pathlib import Path

from smartreco.rehearse.public_images import PAUSE_COMMAND, PAUSE_IMAGE
from smartreco.rehearse.translate import ContainerSpec, Plan, PodSpec, ServiceSpec, service_aliases

LABEL = "org.smartreco.rehearsal"  # the rehearsal's name: `down` removes everything carrying it
LABEL_POD = "org.smartreco.rehearsal.pod"
LABEL_CONTAINER = "org.smartreco.rehearsal.container"
LABEL_WORKLOAD = "org.smartreco.rehearsal.workload"
#: the pause container's user (as registry.k8s.io/pause runs as 65535)
PAUSE_USER = "65535:65535"
#: the Service proxies' user (nobody) and where their script and the kubelet's endpoints files are mounted
PROXY_USER = "65534:65534"
PROXY_DIR = "/rehearsal"
PROXY_LABEL = "service-proxy"


def pause_name(plan: Plan, pod: PodSpec) -> str:
    return f"{plan.name}-{pod.name}"


def container_name(plan: Plan, pod: PodSpec, c: ContainerSpec) -> str:
    return f"{plan.name}-{pod.name}-{c.name}"


def labels(plan: Plan, pod: PodSpec | None = None, container: str | None = None) -> list[str]:
    out = ["--label", f"{LABEL}={plan.name}"]
    if pod is not None:
        out += ["--label", f"{LABEL_POD}={pod.name}", "--label", f"{LABEL_WORKLOAD}={pod.workload}"]
    if container is not None:
        out += ["--label", f"{LABEL_CONTAINER}={container}"]
    return out


def network_create(plan: Plan) -> list[str]:
    return ["network", "create", "--driver", "bridge", *labels(plan), plan.name]


def volume_create(plan: Plan, name: str, pod: PodSpec | None = None) -> list[str]:
    """A named volume; ``pod``: an emptyDir, which lives and goes with that pod."""
    extra = ["--label", f"{LABEL_POD}={pod.name}"] if pod is not None else []
    return ["volume", "create", *labels(plan), *extra, name]


def pause_run(plan: Plan, pod: PodSpec) -> list[str]:
    """The pod sandbox: hostname = pod name, the Service aliases, nothing else it could be used for."""
    args = ["run", "-d", "--name", pause_name(plan, pod), "--hostname", pod.name, "--network", plan.name]
    for alias in pod.aliases:
        args += ["--network-alias", alias]
    for host_port, pod_port in pod.forwards:  # loopback only, as kubectl port-forward listens
        args += ["--publish", f"127.0.0.1:{host_port}:{pod_port}"]
    args += [
        "--ipc",
        "shareable",
        "--user",
        PAUSE_USER,
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--memory",
        str(64 * 2**20),
        "--restart",
        "always",
        *labels(plan, pod, "POD"),
        "--entrypoint",
        PAUSE_COMMAND[0],
        PAUSE_IMAGE,
        *PAUSE_COMMAND[1:],
    ]
    return args


#: the kubelet's cpu.shares bounds and scale (pkg/kubelet/cm: MinShares, MaxShares, SharesPerCPU)
MIN_SHARES, MAX_SHARES, SHARES_PER_CPU = 2, 262144, 1024


def millicores(quantity: str | int | float) -> int:
    """A Kubernetes CPU quantity in millicores, rounded up as ``Quantity.MilliValue`` does (``250m`` -> 250,
    ``0.5`` -> 500, ``2`` -> 2000)."""
    text = str(quantity).strip()
    if text.endswith("m"):
        return int(text[:-1])
    return math.ceil(float(text) * 1000)


def cpu_shares(c: ContainerSpec) -> int:
    """``docker --cpu-shares`` as the kubelet sets cpu.shares from the container's CPU request
    (``MilliCPUToShares``: millicores * 1024 / 1000, at least 2): what decides, when the cores are busy, which
    container runs. A request-less container with a limit gets the limit (the API server defaults the request
    to it); one with neither gets 2, as a BestEffort container does."""
    if "cpu" in c.requests:
        milli = millicores(c.requests["cpu"])
    elif c.cpu_limit:
        milli = millicores(c.cpu_limit)  # already in cores (``--cpus``)
    else:
        milli = 0
    return min(MAX_SHARES, max(MIN_SHARES, milli * SHARES_PER_CPU // 1000))


def container_run(
    plan: Plan, pod: PodSpec, c: ContainerSpec, files_dir: dict[str, Path]
) -> tuple[list[str], dict[str, str]]:
    """``docker run`` arguments of one container and the environment values to run ``docker`` with.
    ``files_dir``: where each configMap/secret volume of the pod was written on the host."""
    pause = pause_name(plan, pod)
    args = [
        "run",
        "-d",
        "--name",
        container_name(plan, pod, c),
        "--network",
        f"container:{pause}",
        "--ipc",
        f"container:{pause}",
        *labels(plan, pod, c.name),
    ]
    # Kubernetes: an init container runs once; the pod's containers restart whatever ends them (restartPolicy Always)
    args += ["--restart", "no" if c.init else "always", "--stop-timeout", str(pod.termination_grace_s)]
    if c.user is not None:
        args += ["--user", f"{c.user}:{c.group}" if c.group is not None else str(c.user)]
    for g in c.groups:
        args += ["--group-add", str(g)]
    if c.read_only_root:
        args.append("--read-only")
    if c.no_new_privileges:
        args += ["--security-opt", "no-new-privileges"]
    for cap in c.cap_drop:
        args += ["--cap-drop", cap]
    for cap in c.cap_add:
        args += ["--cap-add", cap]
    args += ["--cpu-shares", str(cpu_shares(c))]
    if c.cpu_limit:
        args += ["--cpus", c.cpu_limit]
    if c.memory_limit:
        args += ["--memory", c.memory_limit]
    if c.working_dir:
        args += ["--workdir", c.working_dir]
    for m in c.mounts:
        vol = pod.volumes[m.volume]
        if vol.kind in ("emptyDir", "pvc"):
            spec = f"type=volume,source={vol.docker_volume},target={m.path}"
            if m.sub_path:
                spec += f",volume-subpath={m.sub_path}"
        else:  # configMap / secret: files written on the host, always read-only (as the kubelet mounts them)
            source = files_dir[m.volume] / m.sub_path if m.sub_path else files_dir[m.volume]
            spec = f"type=bind,source={source},target={m.path}"
        if m.read_only or vol.kind in ("configMap", "secret"):
            spec += ",readonly"
        args += ["--mount", spec]
    for name in sorted(c.env):
        args += ["--env", name]
    if c.command is not None:
        args += ["--entrypoint", c.command[0], c.image, *c.command[1:], *(c.args or [])]
    else:
        args += [c.image, *(c.args or [])]
    return args, dict(c.env)


def service_proxy_name(plan: Plan, service: str) -> str:
    return f"{plan.name}-svc-{service}"


def service_proxy_run(plan: Plan, svc: ServiceSpec, image: str, script: Path, endpoints_dir: Path) -> list[str]:
    """A Service: :mod:`smartreco.rehearse.service_proxy` (bind-mounted, run by ``image``'s Python) under the
    Service's names, listening on its ports (a port below 1024, like smartreco-web's 80, without a capability:
    the unprivileged-port sysctl of its own network namespace), following the kubelet's endpoints file."""
    args = ["run", "-d", "--name", service_proxy_name(plan, svc.name), "--network", plan.name]
    for alias in service_aliases(svc.name, plan.namespace):
        args += ["--network-alias", alias]
    args += [
        "--user",
        PROXY_USER,
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--sysctl",
        "net.ipv4.ip_unprivileged_port_start=0",
        "--memory",
        str(128 * 2**20),
        "--restart",
        "always",
        *labels(plan),
        "--label",
        f"{LABEL_WORKLOAD}=Service/{svc.name}",
        "--label",
        f"{LABEL_CONTAINER}={PROXY_LABEL}",
        "--mount",
        f"type=bind,source={script},target={PROXY_DIR}/service_proxy.py,readonly",
        "--mount",
        f"type=bind,source={endpoints_dir},target={PROXY_DIR}/endpoints,readonly",
        "--entrypoint",
        "python",
        image,
        "-u",
        f"{PROXY_DIR}/service_proxy.py",
        "--service",
        svc.name,
        "--endpoints",
        f"{PROXY_DIR}/endpoints/{svc.name}.json",
    ]
    for port in svc.ports:
        args += ["--port", str(port["port"])]
    return args
