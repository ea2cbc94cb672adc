"""Rendered Kubernetes objects -> the pods a rehearsal runs: a pure function (no engine, no files), so every
rule the kubelet applies and the rehearsal copies is unit-tested on the real rendered overlays.

What is translated, as the kubelet does it: ``command``/``args`` (``$(VAR)`` expanded from the container's
environment, ``$$`` escapes), ``env`` (values, ``configMapKeyRef``, ``secretKeyRef``, ``fieldRef``; later
entries see earlier ones), ``envFrom`` ConfigMaps and Secrets (``optional``, ``prefix``; ``env`` wins, a later
source wins over an earlier one), Service links (``<SVC>_SERVICE_HOST`` ..., with the Service name for the
cluster IP the rehearsal does not have), ports (named ports resolved for probes), volumes (``configMap`` and
``secret`` as files, ``emptyDir`` as a volume every container of the pod shares, a PVC or a StatefulSet's
claim template as a named volume), probes, ``lifecycle.preStop`` (exec, httpGet, sleep: run before the container's
SIGTERM when its pod terminates), CPU/memory limits and the securityContext (user, group, fsGroup, non-root,
read-only root file system, capabilities, no privilege escalation). The SeldonDeployment's
predictor is made into a pod by :mod:`smartreco.rehearse.seldon`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from smartreco.errors import SmartRecoError
from smartreco.rehearse import public_images
from smartreco.rehearse.secrets import SecretData

_T = TypeVar("_T")

#: kinds that describe nothing to run, and kinds that run but are not rehearsed: why, as `up` prints it
NOT_REHEARSED: dict[str, str] = {
    "Job": "not rehearsed: a Job runs to completion on demand (run its command by hand)",
    "CronJob": "not rehearsed: no scheduler here (run its command by hand)",
    "InferenceService": "not rehearsed: KServe (docs/deploying.md: the kserve overlay cannot serve)",
    "InferenceGraph": "not rehearsed: KServe",
    "ServingRuntime": "not rehearsed: KServe",
    "NetworkPolicy": "not enforced: every container on the rehearsal network reaches every other",
    "PodDisruptionBudget": "not rehearsed: no evictions here",
    "ServiceMonitor": "not rehearsed: no Prometheus operator",
    "PodMonitor": "not rehearsed: no Prometheus operator",
    "PrometheusRule": "not rehearsed: no Prometheus operator",
    "ValidatingAdmissionPolicy": "not rehearsed: no API server admits objects here",
    "ValidatingAdmissionPolicyBinding": "not rehearsed: no API server admits objects here",
    "Role": "not rehearsed: no API server (RBAC)",
    "RoleBinding": "not rehearsed: no API server (RBAC)",
    "ServiceAccount": "not rehearsed: no API server (no tokens are mounted)",
    "Ingress": "not rehearsed: reach the Services' published ports instead",
    "HorizontalPodAutoscaler": "not rehearsed: replicas stay as rendered (or --replicas)",
}
#: pod-template fields about placement on nodes: the rehearsal has one engine (one node), so they are listed, not run
SCHEDULING_FIELDS = ("topologySpreadConstraints", "affinity", "nodeSelector", "tolerations", "priorityClassName")
#: kinds the translation reads (data, names, volumes) without running anything for them
READ_KINDS = ("Namespace", "ConfigMap", "Secret", "Service", "PersistentVolumeClaim")
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "SeldonDeployment")
CLUSTER_DOMAIN = "svc.cluster.local"
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


class TranslationError(SmartRecoError):
    """An object the kubelet would refuse (missing ConfigMap/Secret/key, unknown volume, root where non-root
    is required, ...) or uses something the rehearsal cannot do; the message names the object and field."""


# ------------------------------------------------------------------------------------------------ plan
@dataclass(frozen=True)
class Probe:
    kind: str  # http | tcp | exec
    port: int | None = None
    path: str = "/"
    command: tuple[str, ...] = ()
    initial_delay_s: float = 0.0
    period_s: float = 10.0
    timeout_s: float = 1.0
    failure_threshold: int = 3
    success_threshold: int = 1
    headers: tuple[tuple[str, str], ...] = ()  # httpGet.httpHeaders


@dataclass(frozen=True)
class Hook:
    """A container's ``lifecycle.preStop`` handler: what the kubelet runs before it sends the container SIGTERM
    (the hook and the SIGTERM that follows share the pod's ``terminationGracePeriodSeconds``)."""

    kind: str  # exec | http | sleep
    command: tuple[str, ...] = ()
    port: int | None = None
    path: str = "/"
    headers: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0  # sleep


@dataclass(frozen=True)
class Volume:
    name: str  # the pod's volume name
    kind: str  # emptyDir | pvc | configMap | secret
    docker_volume: str = ""  # emptyDir / pvc: the engine's named volume
    files: tuple[tuple[str, str], ...] = ()  # configMap / secret: (relative path, content)


@dataclass(frozen=True)
class Mount:
    volume: str
    path: str
    read_only: bool = False
    sub_path: str = ""


@dataclass
class ContainerSpec:
    name: str
    image: str  # what runs (public images mapped)
    manifest_image: str  # what the manifest says
    command: list[str] | None  # None: the image's ENTRYPOINT
    args: list[str] | None  # None: the image's CMD (only when command is None too)
    env: dict[str, str]
    ports: dict[str, int] = field(default_factory=dict)  # name (or str(port)) -> containerPort
    mounts: list[Mount] = field(default_factory=list)
    readiness: Probe | None = None
    liveness: Probe | None = None
    startup: Probe | None = None
    pre_stop: Hook | None = None
    user: int | None = None
    group: int | None = None
    groups: list[int] = field(default_factory=list)  # fsGroup + supplementalGroups
    run_as_non_root: bool = False
    read_only_root: bool = False
    no_new_privileges: bool = False
    cap_drop: list[str] = field(default_factory=list)
    cap_add: list[str] = field(default_factory=list)
    cpu_limit: str | None = None
    memory_limit: str | None = None
    requests: dict[str, str] = field(default_factory=dict)
    init: bool = False
    working_dir: str | None = None


@dataclass
class PodSpec:
    name: str  # e.g. redis-0, smartreco-events-0, smartreco-default-0
    workload: str  # Kind/name
    labels: dict[str, str]
    volumes: dict[str, Volume]
    init_containers: list[ContainerSpec]
    containers: list[ContainerSpec]
    aliases: list[str] = field(default_factory=list)
    fs_group: int | None = None
    termination_grace_s: int = 30
    #: (host port, pod port) published on 127.0.0.1 (`up --forward`, what `kubectl port-forward` gives)
    forwards: list[tuple[int, int]] = field(default_factory=list)

    def all_containers(self) -> list[ContainerSpec]:
        return [*self.init_containers, *self.containers]


@dataclass
class ServiceSpec:
    name: str
    ports: list[dict[str, Any]]
    selector: dict[str, str]
    pods: list[str] = field(default_factory=list)


@dataclass
class Plan:
    name: str  # the rehearsal's name: every engine object starts with it and carries it
    namespace: str
    pods: list[PodSpec]
    services: list[ServiceSpec]
    not_rehearsed: list[tuple[str, str]]  # (Kind/name, why)
    notes: list[str]

    def pod(self, name: str) -> PodSpec:
        for p in self.pods:
            if p.name == name:
                return p
        raise KeyError(name)

    def workloads(self) -> dict[str, list[PodSpec]]:
        out: dict[str, list[PodSpec]] = {}
        for p in self.pods:
            out.setdefault(p.workload, []).append(p)
        return out


# -------------------------------------------------------------------------------------------- helpers
def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: a defined VAR is replaced, an undefined one stays as written,
    ``$$`` is one literal ``$``, any other ``$`` is kept."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "$" or i + 1 >= len(text):
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            end = text.find(")", i + 2)
            if end == -1:
                out.append(text[i:])
                break
            name = text[i + 2 : end]
            out.append(env[name] if name in env else text[i : end + 1])
            i = end + 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def cpus(value: str | int | float) -> str:
    """A Kubernetes CPU quantity as ``docker --cpus`` takes it (``500m`` -> ``0.5``)."""
    text = str(value)
    return f"{int(text[:-1]) / 1000:g}" if text.endswith("m") else f"{float(text):g}"


_MEM_UNITS = (
    ("Ki", 2**10),
    ("Mi", 2**20),
    ("Gi", 2**30),
    ("Ti", 2**40),
    ("k", 10**3),
    ("K", 10**3),
    ("M", 10**6),
    ("G", 10**9),
    ("T", 10**12),
)


def memory_bytes(value: str | int) -> str:
    """A Kubernetes memory quantity in bytes (``docker --memory``)."""
    text = str(value)
    for unit, mult in _MEM_UNITS:
        if text.endswith(unit):
            return str(int(float(text[: -len(unit)]) * mult))
    return str(int(float(text)))


def selector_matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def service_aliases(name: str, namespace: str) -> list[str]:
    """The names a Service answers to inside the cluster: short, ``.ns``, ``.ns.svc`` and the FQDN."""
    return [name, f"{name}.{namespace}", f"{name}.{namespace}.svc", f"{name}.{namespace}.{CLUSTER_DOMAIN}"]


def service_link_env(services: list[ServiceSpec]) -> dict[str, str]:
    """The ``<SVC>_SERVICE_HOST``/``_PORT`` variables the kubelet puts into every pod (enableServiceLinks), with
    the Service's name where a cluster would give its ClusterIP."""
    env: dict[str, str] = {}
    for svc in services:
        if not svc.ports:
            continue
        prefix = svc.name.upper().replace("-", "_")
        first = svc.ports[0]
        env[f"{prefix}_SERVICE_HOST"] = svc.name
        env[f"{prefix}_SERVICE_PORT"] = str(first["port"])
        proto = str(first.get("protocol", "TCP"))
        env[f"{prefix}_PORT"] = f"{proto.lower()}://{svc.name}:{first['port']}"
        for p in svc.ports:
            proto = str(p.get("protocol", "TCP"))
            key = f"{prefix}_PORT_{p['port']}_{proto}"
            env[key] = f"{proto.lower()}://{svc.name}:{p['port']}"
            env[f"{key}_PROTO"] = proto.lower()
            env[f"{key}_PORT"] = str(p["port"])
            env[f"{key}_ADDR"] = svc.name
            if p.get("name"):
                env[f"{prefix}_SERVICE_PORT_{str(p['name']).upper().replace('-', '_')}"] = str(p["port"])
    return env


class Lookup:
    """ConfigMaps and Secrets by name, as the kubelet reads them for a pod."""

    def __init__(self, configmaps: dict[str, dict[str, str]], secrets: SecretData) -> None:
        self.configmaps = configmaps
        self.secrets = secrets

    def source(self, kind: str, name: str, optional: bool, where: str) -> dict[str, str] | None:
        table = self.configmaps if kind == "configMap" else self.secrets
        if name in table:
            return table[name]
        if optional:
            return None
        what = "ConfigMap" if kind == "configMap" else "Secret"
        raise TranslationError(f"{where}: {what} {name!r} does not exist (the kubelet would not start the pod)")

    def key(self, kind: str, ref: dict[str, Any], where: str) -> str | None:
        data = self.source(kind, ref["name"], bool(ref.get("optional")), where)
        if data is None:
            return None
        if ref["key"] not in data:
            if ref.get("optional"):
                return None
            what = "ConfigMap" if kind == "configMap" else "Secret"
            raise TranslationError(f"{where}: {what} {ref['name']!r} has no key {ref['key']!r}")
        return str(data[ref["key"]])


def container_env(
    container: dict[str, Any], lookup: Lookup, pod_meta: dict[str, str], base: dict[str, str], where: str
) -> dict[str, str]:
    """The container's environment as the kubelet builds it: ``base`` (Service links), ``envFrom`` in order,
    then ``env`` in order (each value's ``$(VAR)`` expanded against what is defined before it)."""
    env = dict(base)
    for i, src in enumerate(container.get("envFrom") or []):
        kind = "configMap" if "configMapRef" in src else "secret" if "secretRef" in src else None
        if kind is None:
            raise TranslationError(f"{where}.envFrom[{i}]: only configMapRef and secretRef are known")
        ref = src[f"{kind}Ref"]
        data = lookup.source(kind, ref["name"], bool(ref.get("optional")), f"{where}.envFrom[{i}]")
        for key, value in (data or {}).items():
            name = f"{src.get('prefix', '')}{key}"
            if _ENV_NAME.match(name):  # the kubelet skips keys that are not valid variable names
                env[name] = str(value)
    for i, e in enumerate(container.get("env") or []):
        name, w = e["name"], f"{where}.env[{i}] ({e['name']})"
        if "value" in e:
            env[name] = expand(str(e["value"]), env)
            continue
        vf = e.get("valueFrom") or {}
        if "configMapKeyRef" in vf:
            value = lookup.key("configMap", vf["configMapKeyRef"], w)
        elif "secretKeyRef" in vf:
            value = lookup.key("secret", vf["secretKeyRef"], w)
        elif "fieldRef" in vf:
            path = vf["fieldRef"]["fieldPath"]
            if path not in pod_meta:
                raise TranslationError(f"{w}: fieldRef {path} is not rehearsed (have {sorted(pod_meta)})")
            value = pod_meta[path]
        elif "resourceFieldRef" in vf:
            raise TranslationError(f"{w}: resourceFieldRef is not rehearsed")
        else:
            value = ""
        if value is not None:
            env[name] = value
    return env


def _port(value: Any, ports: dict[str, int], where: str) -> int:
    """A probe's or hook's port: a number, or the name of one of the container's ports."""
    if isinstance(value, int) or str(value).isdigit():
        return int(value)
    if value not in ports:
        raise TranslationError(f"{where}: port {value!r} is not a named port of the container")
    return ports[value]


def _http_headers(http_get: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple((str(x["name"]), str(x["value"])) for x in http_get.get("httpHeaders") or [])


def _handler(read: Callable[[Any, dict[str, int], str], _T], raw: Any, ports: dict[str, int], where: str) -> _T:
    """A probe or a lifecycle hook read from the manifest; a malformed one (a field missing or of the wrong type,
    e.g. an ``exec`` without ``command``) is a TranslationError naming where, as the API server would refuse it."""
    try:
        return read(raw, ports, where)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise TranslationError(f"{where}: malformed ({type(exc).__name__}: {exc})") from None


def _probe(raw: dict[str, Any] | None, ports: dict[str, int], where: str) -> Probe | None:
    if not raw:
        return None
    common = {
        "initial_delay_s": float(raw.get("initialDelaySeconds", 0)),
        "period_s": float(raw.get("periodSeconds", 10)),
        "timeout_s": float(raw.get("timeoutSeconds", 1)),
        "failure_threshold": int(raw.get("failureThreshold", 3)),
        "success_threshold": int(raw.get("successThreshold", 1)),
    }
    if "httpGet" in raw:
        h = raw["httpGet"]
        return Probe("http", _port(h["port"], ports, where), str(h.get("path", "/")), headers=_http_headers(h),
                     **common)
    if "tcpSocket" in raw:
        return Probe("tcp", _port(raw["tcpSocket"]["port"], ports, where), **common)
    if "exec" in raw:
        return Probe("exec", command=tuple(raw["exec"]["command"]), **common)
    raise TranslationError(f"{where}: probe kind not rehearsed ({sorted(raw)})")


def _pre_stop(raw: dict[str, Any] | None, ports: dict[str, int], where: str) -> Hook | None:
    """``lifecycle``: its ``preStop`` as a :class:`Hook`. ``postStart`` is refused: the rehearsal would start the
    container without it, which is not what the kubelet does."""
    if not raw:
        return None
    if raw.get("postStart"):
        raise TranslationError(f"{where}.postStart: not rehearsed")
    hook = raw.get("preStop")
    if not hook:
        return None
    if "exec" in hook:
        return Hook("exec", command=tuple(str(a) for a in hook["exec"]["command"]))
    if "httpGet" in hook:
        h = hook["httpGet"]
        return Hook("http", port=_port(h["port"], ports, f"{where}.preStop"), path=str(h.get("path", "/")),
                    headers=_http_headers(h))
    if "sleep" in hook:
        return Hook("sleep", seconds=float(hook["sleep"]["seconds"]))
    raise TranslationError(f"{where}.preStop: handler not rehearsed ({sorted(hook)})")


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def make_container(
    c: dict[str, Any],
    pod: dict[str, Any],
    lookup: Lookup,
    pod_meta: dict[str, str],
    base_env: dict[str, str],
    where: str,
    init: bool = False,
) -> ContainerSpec:
    """One container of a pod spec, translated."""
    env = container_env(c, lookup, pod_meta, base_env, where)
    ports: dict[str, int] = {}
    for p in c.get("ports") or []:
        ports[str(p.get("name") or p["containerPort"])] = int(p["containerPort"])
    command = [expand(str(a), env) for a in c["command"]] if c.get("command") is not None else None
    args = [expand(str(a), env) for a in c["args"]] if c.get("args") is not None else None
    psc = pod.get("securityContext") or {}
    csc = c.get("securityContext") or {}
    user = _int_or_none(csc.get("runAsUser", psc.get("runAsUser")))
    group = _int_or_none(csc.get("runAsGroup", psc.get("runAsGroup")))
    non_root = bool(csc.get("runAsNonRoot", psc.get("runAsNonRoot", False)))
    if non_root and user == 0:
        raise TranslationError(f"{where}: runAsNonRoot with runAsUser 0 (the kubelet refuses to start it)")
    groups = [int(g) for g in [psc.get("fsGroup"), *(psc.get("supplementalGroups") or [])] if g is not None]
    caps = csc.get("capabilities") or {}
    limits = (c.get("resources") or {}).get("limits") or {}
    requests = {k: str(v) for k, v in ((c.get("resources") or {}).get("requests") or {}).items()}
    volumes = {v["name"] for v in pod.get("volumes") or []}
    mounts = []
    for i, vm in enumerate(c.get("volumeMounts") or []):
        if vm["name"] not in volumes and vm["name"] not in pod.get("_claims", ()):
            raise TranslationError(f"{where}.volumeMounts[{i}]: no volume {vm['name']!r} in the pod")
        mounts.append(Mount(vm["name"], vm["mountPath"], bool(vm.get("readOnly")), str(vm.get("subPath") or "")))
    manifest_image = str(c.get("image") or "")
    if not manifest_image:
        raise TranslationError(f"{where}.image: required")
    return ContainerSpec(
        name=c["name"],
        image=public_images.local_image(manifest_image),
        manifest_image=manifest_image,
        command=command,
        args=args,
        env=env,
        ports=ports,
        mounts=mounts,
        readiness=None if init else _handler(_probe, c.get("readinessProbe"), ports, f"{where}.readinessProbe"),
        liveness=None if init else _handler(_probe, c.get("livenessProbe"), ports, f"{where}.livenessProbe"),
        startup=None if init else _handler(_probe, c.get("startupProbe"), ports, f"{where}.startupProbe"),
        pre_stop=None if init else _handler(_pre_stop, c.get("lifecycle"), ports, f"{where}.lifecycle"),
        user=user,
        group=group,
        groups=groups,
        run_as_non_root=non_root,
        read_only_root=bool(csc.get("readOnlyRootFilesystem")),
        no_new_privileges=csc.get("allowPrivilegeEscalation") is False,
        cap_drop=[str(x) for x in caps.get("drop") or []],
        cap_add=[str(x) for x in caps.get("add") or []],
        cpu_limit=cpus(limits["cpu"]) if "cpu" in limits else None,
        memory_limit=memory_bytes(limits["memory"]) if "memory" in limits else None,
        requests=requests,
        init=init,
        working_dir=c.get("workingDir"),
    )


def _files(data: dict[str, str], items: list[dict[str, Any]] | None, where: str) -> tuple[tuple[str, str], ...]:
    if not items:
        return tuple(sorted((k, str(v)) for k, v in data.items()))
    out = []
    for item in items:
        if item["key"] not in data:
            raise TranslationError(f"{where}: no key {item['key']!r}")
        out.append((str(item.get("path") or item["key"]), str(data[item["key"]])))
    return tuple(out)


def make_volumes(
    pod: dict[str, Any], lookup: Lookup, rehearsal: str, pod_name: str, claims: dict[str, str], where: str
) -> dict[str, Volume]:
    """The pod's volumes; ``claims``: StatefulSet claim template name -> this pod's named volume."""
    out: dict[str, Volume] = {}
    for name, docker_volume in claims.items():
        out[name] = Volume(name, "pvc", docker_volume)
    for i, v in enumerate(pod.get("volumes") or []):
        name, w = v["name"], f"{where}.volumes[{i}] ({v['name']})"
        if "emptyDir" in v:
            out[name] = Volume(name, "emptyDir", f"{rehearsal}-{pod_name}-{name}")
        elif "persistentVolumeClaim" in v:
            out[name] = Volume(name, "pvc", f"{rehearsal}-pvc-{v['persistentVolumeClaim']['claimName']}")
        elif "configMap" in v:
            ref = v["configMap"]
            data = lookup.source("configMap", ref["name"], bool(ref.get("optional")), w)
            out[name] = Volume(name, "configMap", files=_files(data or {}, ref.get("items"), w))
        elif "secret" in v:
            ref = v["secret"]
            data = lookup.source("secret", ref["secretName"], bool(ref.get("optional")), w)
            out[name] = Volume(name, "secret", files=_files(data or {}, ref.get("items"), w))
        else:
            kinds = sorted(k for k in v if k != "name")
            raise TranslationError(f"{w}: volume type {kinds} is not rehearsed")
    return out


def make_pod(
    pod_name: str,
    workload: str,
    template: dict[str, Any],
    lookup: Lookup,
    rehearsal: str,
    namespace: str,
    base_env: dict[str, str],
    claims: dict[str, str] | None = None,
) -> PodSpec:
    """A pod of a workload's template."""
    spec = dict(template.get("spec") or {})
    claims = claims or {}
    spec["_claims"] = tuple(claims)
    where = f"{workload} pod {pod_name}"
    pod_meta = {
        "metadata.name": pod_name,
        "metadata.namespace": namespace,
        "spec.nodeName": "rehearsal",
        "spec.serviceAccountName": str(spec.get("serviceAccountName", "default")),
    }
    links = base_env if spec.get("enableServiceLinks", True) else {}
    init = [
        make_container(c, spec, lookup, pod_meta, links, f"{where}.initContainers[{c.get('name')}]", init=True)
        for c in spec.get("initContainers") or []
    ]
    containers = [
        make_container(c, spec, lookup, pod_meta, links, f"{where}.containers[{c.get('name')}]")
        for c in spec.get("containers") or []
    ]
    if not containers:
        raise TranslationError(f"{where}: no containers")
    psc = spec.get("securityContext") or {}
    return PodSpec(
        name=pod_name,
        workload=workload,
        labels={str(k): str(v) for k, v in ((template.get("metadata") or {}).get("labels") or {}).items()},
        volumes=make_volumes(spec, lookup, rehearsal, pod_name, claims, where),
        init_containers=init,
        containers=containers,
        fs_group=_int_or_none(psc.get("fsGroup")),
        termination_grace_s=int(spec.get("terminationGracePeriodSeconds", 30)),
    )


def scheduling_notes(ident: str, pod_spec: dict[str, Any]) -> list[str]:
    """One note per node-placement field of a pod template (not rehearsed: one engine is one node)."""
    return [
        f"{ident}: {key} not rehearsed (one engine = one node; every replica runs here)"
        for key in SCHEDULING_FIELDS
        if pod_spec.get(key)
    ]


def _target_port(pod: PodSpec, target: Any) -> int | None:
    """A Service's targetPort (number or a container's port name) as a number in ``pod``."""
    if str(target).isdigit():
        return int(target)
    for c in pod.containers:
        if str(target) in c.ports:
            return c.ports[str(target)]
    return None


def _replicas(obj: dict[str, Any], override: int | None) -> int:
    if override is not None and obj.get("kind") != "StatefulSet":
        return override
    value = (obj.get("spec") or {}).get("replicas", 1)
    return 1 if value is None else int(value)


def add_forward(plan: Plan, service: str, host_port: int) -> str:
    """``kubectl port-forward svc/SERVICE HOST_PORT:PORT`` for the rehearsal: the Service's first port is published
    on ``127.0.0.1:HOST_PORT`` by its first pod (changes ``plan``; returns the note ``up`` prints). A client on the
    host then sends the same ``Host: localhost:PORT`` it would through kubectl (MLflow's --allowed-hosts admits it)."""
    svc = next((s for s in plan.services if s.name == service), None)
    if svc is None or not svc.ports:
        raise TranslationError(f"--forward {service}:{host_port}: no Service {service!r} with a port")
    if not svc.pods:
        raise TranslationError(f"--forward {service}:{host_port}: Service {service!r} selects no running pod")
    pod = plan.pod(svc.pods[0])
    target = svc.ports[0].get("targetPort", svc.ports[0]["port"])
    number = _target_port(pod, target)
    if number is None:
        raise TranslationError(f"--forward {service}:{host_port}: pod {pod.name} has no port {target!r}")
    pod.forwards.append((host_port, number))
    return f"Service/{service}: 127.0.0.1:{host_port} -> pod {pod.name} port {number} (as kubectl port-forward)"


# ------------------------------------------------------------------------------------------ translate
def translate(
    objects: list[dict[str, Any]],
    secrets: SecretData,
    *,
    rehearsal: str = "smartreco-rehearsal",
    replicas: int | None = None,
    models_patch: bool = False,
    generation: str = "",
    skip: frozenset[str] = frozenset(),
) -> Plan:
    """The pods, Services and notes of a rehearsal of ``objects`` (one namespace) with the generated
    ``secrets``; ``replicas`` replaces the Deployments' and predictors' replica counts (StatefulSets keep
    theirs: two copies of one database would not be a replica set); ``models_patch``: the graph pod's model
    volume is filled from a local folder instead of by its MLflow ``model-fetch`` init container; ``generation``:
    a suffix of the predictor pods' names (``rehearse apply`` starts new pods next to the old ones); ``skip``:
    workload names left out on request (listed as not rehearsed)."""
    from smartreco.rehearse import seldon  # the predictor's pod builds on this module's helpers

    namespaces = {
        str((o.get("metadata") or {}).get("namespace")) for o in objects if (o.get("metadata") or {}).get("namespace")
    }
    if len(namespaces) > 1:
        raise TranslationError(f"objects span namespaces {sorted(namespaces)}: the rehearsal runs one")
    namespace = next(iter(namespaces), "default")
    configmaps = {
        o["metadata"]["name"]: {str(k): str(v) for k, v in (o.get("data") or {}).items()}
        for o in objects
        if o.get("kind") == "ConfigMap"
    }
    rendered_secrets = {
        o["metadata"]["name"]: {str(k): str(v) for k, v in (o.get("stringData") or {}).items()}
        for o in objects
        if o.get("kind") == "Secret"
    }
    lookup = Lookup(configmaps, {**secrets, **rendered_secrets})
    services = [
        ServiceSpec(
            o["metadata"]["name"],
            list((o.get("spec") or {}).get("ports") or []),
            {str(k): str(v) for k, v in ((o.get("spec") or {}).get("selector") or {}).items()},
        )
        for o in objects
        if o.get("kind") == "Service"
    ]
    sdeps = [o for o in objects if o.get("kind") == "SeldonDeployment"]
    for sdep in sdeps:  # the operator makes a Service per predictor: <deployment>-<predictor>
        for predictor in (sdep.get("spec") or {}).get("predictors") or []:
            services.append(seldon.predictor_service(sdep, predictor))
    base_env = service_link_env(services)
    pods: list[PodSpec] = []
    not_rehearsed: list[tuple[str, str]] = []
    notes: list[str] = []
    for obj in objects:
        kind, name = obj.get("kind", "?"), (obj.get("metadata") or {}).get("name", "?")
        ident = f"{kind}/{name}"
        if kind in READ_KINDS:
            continue
        if kind in NOT_REHEARSED:
            not_rehearsed.append((ident, NOT_REHEARSED[kind]))
            continue
        if kind not in WORKLOAD_KINDS:
            not_rehearsed.append((ident, "not rehearsed: the rehearsal does not know this kind"))
            continue
        if name in skip:
            not_rehearsed.append((ident, "not rehearsed: left out with --skip"))
            continue
        if kind == "SeldonDeployment":
            made, more = seldon.predictor_pods(
                obj, lookup, rehearsal, namespace, base_env, replicas, models_patch, generation
            )
            pods.extend(made)
            notes.extend(more)
            continue
        template = (obj.get("spec") or {}).get("template") or {}
        notes.extend(scheduling_notes(ident, template.get("spec") or {}))
        for i in range(_replicas(obj, replicas)):
            pod_name = f"{name}-{i}"
            claims = {}
            if kind == "StatefulSet":
                claims = {
                    t["metadata"]["name"]: f"{rehearsal}-{t['metadata']['name']}-{name}-{i}"
                    for t in (obj.get("spec") or {}).get("volumeClaimTemplates") or []
                }
            pods.append(make_pod(pod_name, ident, template, lookup, rehearsal, namespace, base_env, claims))
    for p in pods:  # a pod answers to its own name; the Services' names belong to their proxies
        p.aliases = [p.name]
    for svc in services:
        svc.pods = [p.name for p in pods if selector_matches(svc.selector, p.labels)]
        if not svc.selector:
            notes.append(f"Service/{svc.name}: no selector, so no pods (endpoints by hand are not rehearsed)")
            continue
        shown = ", ".join(f"{port['port']} -> {port.get('targetPort', port['port'])}" for port in svc.ports)
        notes.append(
            f"Service/{svc.name}: a Service proxy under the Service's names sends each connection to the next "
            f"ready pod ({shown}), as kube-proxy does with the Service's endpoints"
        )
    return Plan(rehearsal, namespace, pods, services, not_rehearsed, notes)
