"""The Secrets a rehearsal needs: found in the rendered objects, generated fresh per rehearsal with the
recipes docs/deploying.md gives (so they fit each other: smartreco-state carries smartreco-redis's
password), kept 0600 in the rehearsal's folder outside the repository, never in a manifest or a commit."""

from __future__ import annotations

import json
import os
import secrets as _random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from smartreco.errors import SmartRecoError

SecretData = dict[str, dict[str, str]]


class SecretError(SmartRecoError):
    """An object references a Secret or key the rehearsal has no recipe for."""


def _hex() -> str:
    return _random.token_hex(24)


#: Secret -> (keys, recipe(already generated secrets) -> data); the order matters (state needs redis)
RECIPES: dict[str, Callable[[SecretData], dict[str, str]]] = {
    "smartreco-redis": lambda _: {"password": _hex()},
    "smartreco-postgres": lambda _: {"username": "mlflow", "password": _hex()},
    "smartreco-object-store": lambda _: {"AWS_ACCESS_KEY_ID": "rehearsal", "AWS_SECRET_ACCESS_KEY": _hex()},
    "smartreco-state": lambda made: {"SMARTRECO_STATE": f"redis://:{made['smartreco-redis']['password']}@redis:6379/1"},
}
#: what a recipe needs generated first
_NEEDS = {"smartreco-state": ("smartreco-redis",)}


def pod_specs(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every pod spec in an object: workload templates, CronJob job templates, SeldonDeployment componentSpecs."""
    spec = obj.get("spec") or {}
    if obj.get("kind") == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    template = spec.get("template")
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        yield template["spec"]
    for predictor in spec.get("predictors") or []:
        for component in predictor.get("componentSpecs") or []:
            if isinstance(component.get("spec"), dict):
                yield component["spec"]


def referenced(objects: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Secret name -> the keys objects read by name (``envFrom`` reads them all: an empty set)."""
    refs: dict[str, set[str]] = {}
    for obj in objects:
        for pod in pod_specs(obj):
            for c in [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]:
                for e in c.get("env") or []:
                    ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                    if ref:
                        refs.setdefault(ref["name"], set()).add(ref["key"])
                for src in c.get("envFrom") or []:
                    if "secretRef" in src:
                        refs.setdefault(src["secretRef"]["name"], set())
            for v in pod.get("volumes") or []:
                if "secret" in v:
                    refs.setdefault(v["secret"]["secretName"], set())
    return refs


def generate(refs: dict[str, set[str]]) -> SecretData:
    """Fresh values for every referenced Secret (and what their recipes need)."""
    unknown = sorted(set(refs) - set(RECIPES))
    if unknown:
        raise SecretError(
            f"Secret {unknown[0]!r} is referenced but the rehearsal has no recipe for it "
            f"(smartreco/rehearse/secrets.py RECIPES; docs/deploying.md says how it is made)"
        )
    wanted = set(refs) | {n for name in refs for n in _NEEDS.get(name, ())}
    made: SecretData = {}
    for name, recipe in RECIPES.items():
        if name in wanted:
            made[name] = recipe(made)
    for name, keys in refs.items():
        missing = sorted(keys - set(made[name]))
        if missing:
            raise SecretError(
                f"Secret {name!r} key {missing[0]!r} is referenced; its recipe makes {sorted(made[name])}"
            )
    return made


def write(folder: Path, data: SecretData) -> Path:
    """Keep the generated Secrets in ``folder/secrets.json`` (0600, folder 0700); returns the file."""
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    path = folder / "secrets.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
    return path
