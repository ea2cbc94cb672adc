"""Rehearsal patches: the few changes the rehearsal makes to the rendered objects before running them, each
printed by ``rehearse up`` and named in the README as not Kubernetes-rehearsed.

Object storage: MLflow's artifacts and the Feast registry live in S3 (Kubeflow's MinIO), which is not part of
the overlays. The rehearsal points ``MLFLOW_ARTIFACTS_DESTINATION`` and ``FEAST_REGISTRY_PATH`` at a shared
volume (one named volume standing in for the buckets) mounted into every container that reads the object
store's credentials (``envFrom`` Secret ``smartreco-object-store``)."""

from __future__ import annotations

import copy
from typing import Any

from smartreco.rehearse.secrets import pod_specs

OBJECT_STORE_SECRET = "smartreco-object-store"
OBJECT_STORE_MOUNT = "/var/lib/rehearsal-object-store"
OBJECT_STORE_CLAIM = "rehearsal-object-store"
#: ConfigMap keys naming an S3 location -> the folder under the mount that stands in for it
S3_KEYS = {
    "MLFLOW_ARTIFACTS_DESTINATION": "smartreco-mlflow/artifacts",
    "FEAST_REGISTRY_PATH": "smartreco-feast/registry.db",
}


def _reads_object_store(container: dict[str, Any]) -> bool:
    return any(
        (src.get("secretRef") or {}).get("name") == OBJECT_STORE_SECRET for src in container.get("envFrom") or []
    )


def object_store_to_volume(objects: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Patched copies of ``objects`` and one note per change."""
    out = copy.deepcopy(objects)
    notes: list[str] = []
    for obj in out:
        name = (obj.get("metadata") or {}).get("name")
        if obj.get("kind") == "ConfigMap":
            data = obj.get("data") or {}
            for key, folder in S3_KEYS.items():
                if str(data.get(key, "")).startswith("s3://"):
                    notes.append(
                        f"ConfigMap/{name} {key}: {data[key]} -> {OBJECT_STORE_MOUNT}/{folder} "
                        "(rehearsal patch: no S3 here, a volume stands in; not Kubernetes-rehearsed)"
                    )
                    data[key] = f"{OBJECT_STORE_MOUNT}/{folder}"
            continue
        for pod in pod_specs(obj):
            users = [
                c
                for c in [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]
                if _reads_object_store(c)
            ]
            if not users:
                continue
            # idempotent: an object patched before (a deploy patching the rehearsal's saved object) is left as it is
            if not any(v.get("name") == OBJECT_STORE_CLAIM for v in pod.get("volumes") or []):
                pod.setdefault("volumes", []).append(
                    {"name": OBJECT_STORE_CLAIM, "persistentVolumeClaim": {"claimName": OBJECT_STORE_CLAIM}}
                )
            for c in users:
                if not any(m.get("name") == OBJECT_STORE_CLAIM for m in c.get("volumeMounts") or []):
                    c.setdefault("volumeMounts", []).append(
                        {"name": OBJECT_STORE_CLAIM, "mountPath": OBJECT_STORE_MOUNT}
                    )
            notes.append(
                f"{obj.get('kind')}/{name}: {', '.join(c['name'] for c in users)} mount the object-store "
                f"volume at {OBJECT_STORE_MOUNT} (rehearsal patch)"
            )
    return out, notes
