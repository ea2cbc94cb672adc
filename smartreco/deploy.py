"""Deploy a trained model: render the SeldonDeployment with its URIs, then apply it or record it locally.

The manifest in ``manifests/base/seldon/seldondeployment.yaml`` stays the single description of the
graph; a deploy only rewrites the ``model_uri`` parameters of one arm's nodes (``hybrid-a`` /
``cf-a`` / ``cb-a`` for the champion, ``-b`` for the challenger), sets the serving image and adds
version annotations. Targets:

* ``cluster``: the live SeldonDeployment with only its model URIs changed, written back with ``kubectl replace``
  (``kubectl`` and a current context needed; the overlay's images, replicas and resources stay);
* ``local``: write it to ``<runs>/deploy/seldondeployment.yaml`` and record ``current.json``; the
  local graph picks it up with ``smartreco serve --manifest <that file>``;
* ``rehearsal``: the running cluster rehearsal's SeldonDeployment (``smartreco rehearse up``) with only its model
  URIs changed, rolled out by ``rehearse apply`` (new predictor pods ready before the old ones go). Like the cluster
  target it writes version URIs (``models:/NAME/7``): the new pods' model-fetch resolves their aliases in the
  rehearsal's MLflow and records each version, and the nodes map the version URI to that folder
  (:mod:`smartreco.tracking.model_fetch`, :func:`smartreco.serving.model_uri.resolve_local`);
* ``auto``: ``cluster`` when ``kubectl`` has a current context, else ``local``.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml

from smartreco.errors import SmartRecoError
from smartreco.images import serving_image
from smartreco.paths import project_root, runs_dir

DEFAULT_TEMPLATE = Path("manifests/base/seldon/seldondeployment.yaml")
TARGETS = ("auto", "local", "cluster", "rehearsal")
ARMS = {"champion": "a", "challenger": "b"}
KINDS = ("hybrid", "cf", "cb")
VERSION_ANNOTATION = "smartreco.io/model-version"


class DeployError(SmartRecoError):
    """A deploy that cannot proceed (bad target, no node to patch, kubectl failing)."""


@dataclass
class DeployResult:
    target: str
    manifest: str
    model_uris: dict[str, str]
    version: str
    applied: bool
    message: str
    record: str | None = None
    deployed_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def to_dict(self) -> dict:
        return asdict(self)

    def to_markdown(self) -> str:
        rows = "\n".join(f"| {k} | `{v}` |" for k, v in sorted(self.model_uris.items()))
        return (
            f"# Deploy\n\n- target: **{self.target}** ({'applied' if self.applied else 'recorded'})\n"
            f"- model version: `{self.version}`\n- manifest: `{self.manifest}`\n- {self.message}\n\n"
            f"| node | model_uri |\n| --- | --- |\n{rows}\n"
        )


def _template(path: Path | str | None) -> Path:
    p = Path(path) if path else DEFAULT_TEMPLATE
    if not p.is_absolute():
        p = project_root() / p
    if not p.is_file():
        raise DeployError(f"manifest template: {p} not found")
    return p


def render_seldon(
    model_uris: dict[str, str],
    *,
    arm: str = "champion",
    version: str = "",
    template: Path | str | None = None,
    image: str | None = None,
) -> dict:
    """The SeldonDeployment with ``model_uris`` (kind -> URI/path, kinds hybrid/cf/cb) set on ``arm``."""
    doc = yaml.safe_load(_template(template).read_text())
    return set_model_uris(doc, model_uris, arm=arm, version=version, image=image or serving_image())


def set_model_uris(
    doc: dict, model_uris: dict[str, str], *, arm: str = "champion", version: str = "", image: str | None = None
) -> dict:
    """``doc`` (a SeldonDeployment, changed in place and returned) with ``model_uris`` set on ``arm``'s nodes,
    the version annotations, and every node container's image set to ``image`` (None: images kept as they are,
    which is what a cluster deploy wants: the overlay's registry stays, see :func:`patch_live`)."""
    if arm not in ARMS:
        raise DeployError(f"arm: must be one of {', '.join(ARMS)}, got {arm!r}")
    unknown = sorted(set(model_uris) - set(KINDS))
    if unknown:
        raise DeployError(f"model_uris: unknown kind(s) {', '.join(unknown)} (use {', '.join(KINDS)})")
    suffix = ARMS[arm]
    # (node, parameter) -> URI: the kind's own node, or in the fused graph (manifests/components/fused-graph)
    # the arm's hybrid node, whose cf_model_uri / cb_model_uri parameters stand for its missing children
    targets = {(f"{kind}-{suffix}", "model_uri"): uri for kind, uri in model_uris.items()}
    fused = {
        (f"hybrid-{suffix}", f"{kind}_model_uri"): (f"{kind}-{suffix}", "model_uri")
        for kind in model_uris
        if kind != "hybrid"
    }
    patched: set[tuple[str, str]] = set()
    for predictor in doc.get("spec", {}).get("predictors", []):
        stack = [predictor.get("graph", {})]
        while stack:
            node = stack.pop()
            stack.extend(node.get("children") or [])
            params = node.setdefault("parameters", [])
            for (name, pname), uri in targets.items():
                if node.get("name") != name:
                    continue
                entry = next((p for p in params if p.get("name") == pname), None)
                if entry is None:
                    params.append({"name": pname, "type": "STRING", "value": uri})
                else:
                    entry["value"] = uri
                patched.add((name, pname))
            for (name, pname), key in fused.items():
                entry = next((p for p in params if p.get("name") == pname), None)
                if node.get("name") == name and entry is not None:
                    entry["value"] = targets[key]
                    patched.add(key)
        if image:
            for spec in predictor.get("componentSpecs") or []:
                for container in spec.get("spec", {}).get("containers") or []:
                    container["image"] = image
    missing = sorted(name for name, _ in set(targets) - patched)
    if missing:
        raise DeployError(f"manifest: no graph node named {', '.join(missing)} to set model_uri on")
    notes = doc.setdefault("metadata", {}).setdefault("annotations", {})
    notes[VERSION_ANNOTATION + f".{arm}"] = str(version)
    notes["smartreco.io/deployed-at"] = datetime.now(UTC).isoformat(timespec="seconds")
    return doc


def patch_live(live: dict, model_uris: dict[str, str], *, arm: str = "champion", version: str = "") -> dict:
    """What a cluster deploy writes back: the LIVE SeldonDeployment (as ``kubectl get -o json`` gives it) with
    only the model URIs and the version annotations changed. Applying the rendered base file instead would
    revert the overlay (registry, replicas, resources) and is refused by the deploy admission policy
    (``manifests/base/platform/kfp/deploy-policy.yaml``), which lets the pipeline change nothing else."""
    doc = copy.deepcopy(live)
    doc.pop("status", None)
    doc.get("metadata", {}).pop("managedFields", None)
    return set_model_uris(doc, model_uris, arm=arm, version=version, image=None)


def _kubectl(args: list[str], namespace: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    cmd = ["kubectl", *args] + (["-n", namespace] if namespace else [])
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, input=stdin)


def _last_line(proc: subprocess.CompletedProcess) -> str:
    return ((proc.stderr or proc.stdout).strip().splitlines() or [""])[-1]


def registry_uri(uri: str) -> str:
    """``uri`` when it names the registry (``models:/...``): the rehearsal's pods fetch from its MLflow only."""
    if not uri.startswith("models:/"):
        raise DeployError(
            f"deploy target rehearsal: {uri!r} is not a registry URI; the rehearsal's pods fetch models:/ URIs from "
            "its MLflow (register there: `smartreco rehearse up --forward mlflow:5000`, "
            "MLFLOW_TRACKING_URI=http://localhost:5000)"
        )
    return uri


def deploy_rehearsal(
    model_uris: dict[str, str], *, version: str, arm: str, manifest: Path, rehearsal: str | None, timeout_s: float
) -> DeployResult:
    """The ``rehearsal`` target (module docstring): patch the rehearsal's live SeldonDeployment, ``rehearse apply``."""
    from smartreco.rehearse import session  # engine code, only for this target

    name = rehearsal or session.DEFAULT_NAME
    chosen = {kind: registry_uri(uri) for kind, uri in model_uris.items()}
    patched = patch_live(session.live_seldon(name), chosen, arm=arm, version=version)
    manifest.write_text(yaml.safe_dump(patched, sort_keys=False))
    out = session.apply(manifest, name=name, timeout_s=timeout_s, log=lambda line: print(line, flush=True))
    uris = {f"{k}-{ARMS[arm]}": v for k, v in chosen.items()}
    return DeployResult(
        "rehearsal",
        str(manifest),
        uris,
        version,
        True,
        f"rehearse apply ({name}): {len(out['new_pods'])} new predictor pod(s) ready in {out['ready_seconds']} s, "
        f"then {len(out['removed'])} old pod(s) removed",
    )


def cluster_configured() -> bool:
    """kubectl on PATH with a current context (what ``auto`` deploys to)."""
    if shutil.which("kubectl") is None:
        return False
    try:
        out = subprocess.run(["kubectl", "config", "current-context"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and bool(out.stdout.strip())


def deploy(
    model_uris: dict[str, str],
    *,
    version: str = "",
    target: str = "auto",
    arm: str = "champion",
    namespace: str = "",
    template: Path | str | None = None,
    out_dir: Path | str | None = None,
    rehearsal: str | None = None,
    timeout_s: float = 900.0,
) -> DeployResult:
    """Render, then write it where ``target`` says: cluster, the live SeldonDeployment patched (:func:`patch_live`)
    and written back with ``kubectl replace``; rehearsal, ``rehearse apply`` (``rehearsal`` names it, default the
    CLI's); local, a record for the local graph."""
    if target not in TARGETS:
        raise DeployError(f"deploy target: must be one of {', '.join(TARGETS)}, got {target!r}")
    resolved = ("cluster" if cluster_configured() else "local") if target == "auto" else target
    doc = render_seldon(model_uris, arm=arm, version=version, template=template)
    out = Path(out_dir) if out_dir else runs_dir() / "deploy"
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "seldondeployment.yaml"
    manifest.write_text(yaml.safe_dump(doc, sort_keys=False))
    uris = {f"{k}-{ARMS[arm]}": v for k, v in model_uris.items()}
    if resolved == "rehearsal":
        return deploy_rehearsal(
            model_uris, version=version, arm=arm, manifest=manifest, rehearsal=rehearsal, timeout_s=timeout_s
        )
    if resolved == "cluster":
        if shutil.which("kubectl") is None:
            raise DeployError("deploy target cluster: kubectl not found on PATH")
        name = doc.get("metadata", {}).get("name", "smartreco")
        got = _kubectl(["get", "seldondeployment", name, "-o", "json"], namespace)
        if got.returncode != 0:
            raise DeployError(
                f"kubectl get seldondeployment {name} failed ({_last_line(got)}); the pipeline only "
                "updates a deployed graph: apply an overlay first (kubectl apply -k "
                "manifests/overlays/production)"
            )
        try:
            live = json.loads(got.stdout)
        except json.JSONDecodeError as exc:
            raise DeployError(f"kubectl get seldondeployment {name}: not JSON ({exc})") from exc
        patched = patch_live(live, model_uris, arm=arm, version=version)
        manifest.write_text(yaml.safe_dump(patched, sort_keys=False))
        proc = _kubectl(["replace", "-f", "-"], namespace, stdin=json.dumps(patched))
        if proc.returncode != 0:
            raise DeployError(f"kubectl replace failed: {_last_line(proc)}")
        return DeployResult("cluster", str(manifest), uris, version, True, proc.stdout.strip())
    record = out / "current.json"
    result = DeployResult(
        "local",
        str(manifest),
        uris,
        version,
        False,
        f"local graph: `smartreco serve --manifest {manifest}` serves it (restart a running graph to pick it up)",
        str(record),
    )
    record.write_text(json.dumps(result.to_dict(), indent=2))
    return result


def current_local() -> dict | None:
    """The last local deploy record (None when nothing was deployed locally)."""
    record = runs_dir() / "deploy" / "current.json"
    return json.loads(record.read_text()) if record.is_file() else None
