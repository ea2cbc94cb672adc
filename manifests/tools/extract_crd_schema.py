"""Store the OpenAPI v3 schema of one version of a CustomResourceDefinition as compact JSON.

Usage: python manifests/tools/extract_crd_schema.py CRD.yaml VERSION OUT.json
(How manifests/schemas/*.json were made; their sources are listed in manifests/schemas/SOURCE.md.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml


def extract(crd_path: Path, version: str) -> dict:
    crd = yaml.safe_load(crd_path.read_text())
    spec = crd["spec"]
    for v in spec["versions"]:
        if v["name"] == version:
            return {
                "group": spec["group"],
                "kind": spec["names"]["kind"],
                "version": version,
                "openAPIV3Schema": v["schema"]["openAPIV3Schema"],
            }
    raise SystemExit(f"{crd_path}: no version {version!r} (have {[v['name'] for v in spec['versions']]})")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    doc = extract(Path(sys.argv[1]), sys.argv[2])
    Path(sys.argv[3]).write_text(json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n")
