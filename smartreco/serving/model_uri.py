"""Resolve a node's ``model_uri`` parameter to a local folder and load the model bundle from it.

Graph nodes run in the serving venv, which has no MLflow: ``smartreco serve`` (pipeline venv)
resolves ``models:/name@alias`` URIs with MLflow first and hands the node processes a map
``{uri: path}`` in ``SMARTRECO_MODEL_URIS`` (JSON). Plain paths and ``file://`` URIs work directly.
Only ONNX/npz/parquet artifacts are loaded (by the bundle), never pickles.
"""

from __future__ import annotations

import importlib
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


def resolve_local(uri: str) -> Path:
    """Local folder for ``uri`` (mapped ``models:/`` URI, ``file://`` URI or plain path)."""
    mapped = uri_map().get(uri)
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
