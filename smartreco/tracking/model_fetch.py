"""model-fetch: the graph pod's init container fills the model folders the nodes load.

The serving image has no MLflow, so before the nodes start this (pipeline image) downloads every registry
URI of ``SMARTRECO_MODEL_URIS`` into its folder. An alias (``models:/NAME@champion``) is resolved to its
version once, that exact version is downloaded (no race with an alias moving mid-download), and the version
is recorded beside the folder: a deploy names versions (``models:/NAME/7``, so the pods roll), and the nodes
map such a URI to the folder fetched for it (:func:`smartreco.serving.model_uri.resolve_local`).

Run as ``python -m smartreco.tracking.model_fetch [--alias challenger]`` (the canary's predictor fetches
only its challenger arm).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from smartreco.errors import SmartRecoError
from smartreco.serving.model_uri import uri_map, write_fetch_record

_REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


class ModelFetchError(SmartRecoError):
    """A mapped URI model-fetch cannot resolve or download."""


@dataclass(frozen=True)
class Fetched:
    uri: str
    name: str
    version: str
    folder: str


def parse_registry_uri(uri: str) -> tuple[str, str | None, str | None]:
    """``(name, alias, version)`` of ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``."""
    match = _REGISTRY_URI.match(uri)
    if match is None:
        raise ModelFetchError(f"SMARTRECO_MODEL_URIS: {uri!r} is not models:/NAME@ALIAS or models:/NAME/VERSION")
    return match["name"], match["alias"], match["version"]


def fetch_one(client, uri: str, folder: str) -> Fetched:
    """Download ``uri``'s exact registry version into ``folder`` and record it beside the folder."""
    import mlflow

    name, alias, version = parse_registry_uri(uri)
    if alias is not None:
        try:
            version = str(client.get_model_version_by_alias(name, alias).version)
        except Exception as exc:  # noqa: BLE001 - MLflow raises its own types; name the URI instead
            raise ModelFetchError(f"model-fetch: {uri}: the registry has no such alias ({exc})") from exc
    os.makedirs(folder, exist_ok=True)
    mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=folder)
    write_fetch_record(folder, uri, name, str(version))
    return Fetched(uri, name, str(version), folder)


def _registry_client():
    """A registry client on the configured tracking URI; unlike ``mlflow_tracking.configure`` it creates no
    experiment (an init container only reads the registry)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from smartreco.tracking.mlflow_tracking import tracking_uri

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def fetch_all(mapping: dict[str, str], *, alias: str | None = None, client=None) -> list[Fetched]:
    """Fetch every registry URI of ``mapping`` (only those with ``@alias`` when given); other entries (local
    paths) are left alone."""
    if client is None:
        client = _registry_client()
    done = []
    for uri, folder in mapping.items():
        if not uri.startswith("models:/"):
            continue
        if alias is not None and not uri.endswith(f"@{alias}"):
            continue
        done.append(fetch_one(client, uri, folder))
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="model-fetch", description=__doc__.splitlines()[0])
    parser.add_argument("--alias", help="fetch only the URIs with this alias (e.g. challenger)")
    args = parser.parse_args(argv)
    try:
        for got in fetch_all(uri_map(), alias=args.alias):
            print(f"fetched {got.uri} (version {got.version}) -> {Path(got.folder)}", flush=True)
    except SmartRecoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
