"""Offline checks of the deployment manifests: build each kustomization with the real `kubectl kustomize`
and validate every object against its schema, strictly (an unknown field is an error, as with
`kubectl apply --validate=strict`).

- core Kubernetes kinds: the schemas bundled with `kubernetes-validate` (PyPI), for K8S_VERSION;
- CRDs (SeldonDeployment, InferenceService, InferenceGraph, PodMonitor, ServiceMonitor, PrometheusRule):
  the OpenAPI v3 schemas kept in manifests/schemas/ (sources in SOURCE.md), made strict here.
A kind with no schema is an error too, so nothing slips through unchecked.

CLI: `python manifests/tools/validate.py [KUSTOMIZATION_DIR ...]` (default: every overlay); exit 1 on errors.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import yaml

MANIFESTS = Path(__file__).resolve().parents[1]
SCHEMAS = MANIFESTS / "schemas"
K8S_VERSION = os.environ.get("SMARTRECO_K8S_VERSION", "1.32.0")


class ToolMissing(RuntimeError):
    """A command-line tool the check needs is not installed (scripts/tools.sh installs it)."""


def kubectl() -> str:
    """Path of a kubectl with kustomize built in: PATH first, then the project's .venv."""
    found = shutil.which("kubectl") or shutil.which("kubectl", path=str(MANIFESTS.parent / ".venv" / "bin"))
    if not found:
        raise ToolMissing("kubectl not found: run scripts/tools.sh")
    return found


def kustomize_build(path: Path | str) -> list[dict]:
    """Objects of `kubectl kustomize PATH`; RuntimeError with kustomize's own message when it fails."""
    proc = subprocess.run([kubectl(), "kustomize", str(path)], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {path}: {proc.stderr.strip()}")
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


# ----------------------------------------------------------------------------------- CRD schemas
def _strict(node: Any) -> Any:
    """OpenAPI v3 (structural CRD schema) -> JSON Schema that rejects unknown fields."""
    if isinstance(node, list):
        return [_strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strict(v) for k, v in node.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    preserve = out.get("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


def _root_meta(schema: dict) -> dict:
    """CRD roots type `metadata` only as `object`: check the parts kustomize and the API server need."""
    schema = copy.deepcopy(schema)
    props = schema.setdefault("properties", {})
    props["metadata"] = {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253},
            "namespace": {"type": "string"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        "additionalProperties": False,
    }
    schema.setdefault("required", [])
    for key in ("apiVersion", "kind", "metadata", "spec"):
        if key not in schema["required"]:
            schema["required"].append(key)
    return schema


@functools.cache
def crd_validators() -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    out = {}
    for path in sorted(SCHEMAS.glob("*.json")):
        doc = json.loads(path.read_text())
        schema = _root_meta(_strict(doc["openAPIV3Schema"]))
        out[(f"{doc['group']}/{doc['version']}", doc["kind"])] = jsonschema.Draft7Validator(schema)
    return out


def _where(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "<root>"


def validate_object(obj: dict, k8s_version: str = K8S_VERSION) -> list[str]:
    """Schema errors of one object, each naming kind/name and the field path; [] when valid."""
    kind, api = obj.get("kind", "?"), obj.get("apiVersion", "?")
    name = f"{kind}/{(obj.get('metadata') or {}).get('name', '?')}"
    validator = crd_validators().get((api, kind))
    if validator is not None:
        errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
        return [f"{name}: {_where(e)}: {e.message}" for e in errors]
    import kubernetes_validate as kv  # heavy (schemas for every version): import on first core object

    try:
        kv.validate(obj, k8s_version, strict=True)
    except kv.SchemaNotFoundError:
        return [f"{name}: no schema for {api} {kind} (Kubernetes {k8s_version} or manifests/schemas/)"]
    except kv.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path) or "<root>"
        return [f"{name}: {path}: {exc.message}"]
    return []


def validate_objects(objs: list[dict], k8s_version: str = K8S_VERSION) -> list[str]:
    errors: list[str] = []
    for obj in objs:
        errors.extend(validate_object(obj, k8s_version))
    return errors


def overlays() -> list[Path]:
    return sorted(p.parent for p in (MANIFESTS / "overlays").glob("*/kustomization.yaml"))


def main(argv: list[str]) -> int:
    targets = [Path(a) for a in argv] or overlays()
    failed = False
    for target in targets:
        try:
            objs = kustomize_build(target)
        except (RuntimeError, ToolMissing) as exc:
            print(f"FAIL {target}: {exc}")
            failed = True
            continue
        errors = validate_objects(objs)
        failed |= bool(errors)
        print(f"{'FAIL' if errors else 'ok  '} {target}: {len(objs)} objects, {len(errors)} schema errors")
        for e in errors:
            print(f"     {e}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
