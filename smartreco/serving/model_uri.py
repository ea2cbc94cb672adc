"""Resolve a node's ``model_uri`` parameter to a local folder and load the model bundle from it.

Graph nodes run in the serving venv, which has no MLflow: ``smartreco serve`` (pipeline venv)
resolves ``models:/name@alias`` URIs with MLflow first and hands the node processes a map
``{uri: path}`` in ``SMARTRECO_MODEL_URIS`` (JSON). Plain paths and ``file://`` URIs work directly.
Only ONNX/npz/parquet artifacts are loaded (by the bundle), never pickles.

On a cluster the map holds registry aliases (``models:/NAME@champion``) and the pod's model-fetch init
container fills each folder, recording next to it the version the alias pointed at
(:func:`write_fetch_record`). A deploy writes version URIs (``models:/NAME/7``) into the graph, because a
changed parameter is what makes the operator roll the pods; such a URI resolves to the fetched folder of
``NAME`` whose record says version 7, and to a clear error when model-fetch fetched another version (the
alias moved after the deploy) instead of serving a model the deploy did not name.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from smartreco import settings
from smartreco.errors import SmartRecoError

MODEL_URIS_ENV = settings.MODEL_URIS.name
LOADER_ENV = settings.BUNDLE_LOADER.name
DEFAULT_LOADER = settings.BUNDLE_LOADER.default


class ModelUriError(SmartRecoError):
    """A model URI that cannot be resolved to a local bundle folder."""


def uri_map() -> dict[str, str]:
    try:
        mapping = settings.MODEL_URIS.get()
    except settings.SettingError as exc:  # names the variable; a ModelUriError for the node's callers
        raise ModelUriError(str(exc)) from None
    return {str(k): str(v) for k, v in mapping.items()}


#: the sidecar model-fetch writes next to each folder it fills: ``<folder>.registry.json``
FETCH_RECORD_SUFFIX = ".registry.json"
_VERSION_URI = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)$")


def fetch_record_path(folder: str | Path) -> Path:
    """Where model-fetch records what it fetched into ``folder`` (beside it: the folder holds only the
    bundle's files, whose digests the bundle checks)."""
    folder = Path(folder)
    return folder.with_name(folder.name + FETCH_RECORD_SUFFIX)


def write_fetch_record(folder: str | Path, uri: str, name: str, version: str) -> Path:
    """Record that ``folder`` holds registered model ``name`` version ``version``, fetched for ``uri``."""
    path = fetch_record_path(folder)
    path.write_text(json.dumps({"uri": uri, "name": name, "version": str(version)}))
    return path


def read_fetch_record(folder: str | Path) -> dict | None:
    """The record model-fetch left beside ``folder``, or None (a folder filled some other way)."""
    try:
        return json.loads(fetch_record_path(folder).read_text())
    except (OSError, ValueError):
        return None


def _fetched_version_folder(uri: str, mapping: dict[str, str]) -> str | None:
    """The mapped folder holding ``models:/NAME/VERSION`` by its fetch record; None when no mapped folder
    of ``NAME`` has a record (nothing fetched here: the caller falls back to MLflow)."""
    match = _VERSION_URI.match(uri)
    if match is None:
        return None
    name, version = match["name"], match["version"]
    fetched = {}
    for path in mapping.values():
        record = read_fetch_record(path)
        if record is not None and record.get("name") == name:
            if str(record.get("version")) == version:
                return path
            fetched[str(record.get("uri"))] = str(record.get("version"))
    if fetched:
        got = ", ".join(f"{u} was version {v}" for u, v in sorted(fetched.items()))
        raise ModelUriError(
            f"model_uri: {uri} was not fetched into this pod ({got}): the registry alias moved after the "
            "deploy; deploy again"
        )
    return None


def resolve_local(uri: str) -> Path:
    """Local folder for ``uri`` (mapped ``models:/`` URI, a version URI model-fetch fetched under an alias,
    ``file://`` URI or plain path)."""
    mapping = uri_map()
    mapped = mapping.get(uri) or _fetched_version_folder(uri, mapping)
    if mapped:
        uri = mapped
    if uri.startswith("models:/") or uri.startswith("runs:/"):
        try:
            import mlflow  # only present in the pipeline venv
        except ImportError:
            raise ModelUriError(
                f"model_uri: {uri} needs MLflow to resolve; start the graph with `smartreco serve` "
                f"or set {MODEL_URIS_ENV}"
            ) from None
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    path = Path(uri.removeprefix("file://"))
    if not path.exists():
        raise ModelUriError(f"model_uri: {path} does not exist")
    return path


def _import_attr(spec: str) -> Callable[..., Any]:
    module_name, _, attr_path = spec.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr_path.split("."):
        obj = getattr(obj, part)
    return obj


def load_bundle(uri: str) -> Any:
    """Load the ModelBundle behind ``uri`` with the runtime's loader (overridable for tests)."""
    loader = _import_attr(settings.BUNDLE_LOADER.get())
    return loader(resolve_local(uri))
