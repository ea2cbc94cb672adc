"""The Markdown run summary the Kubeflow UI shows for a training run (parameters, metrics, gate, where).

Plain string formatting (no tabulate), so it renders the same in the UI, in a terminal and in git.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

#: metrics shown per model, in this order (the rest stay in the JSON artifact)
HEADLINE = ("ndcg@10", "recall@10", "precision@10", "map@10", "hitrate@10", "coverage")


def md_table(header: list[str], rows: list[list[object]]) -> str:
    def cell(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.4f}"
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def load_json(path: Path | str | None) -> dict:
    """A JSON file, or the ``*.json`` named like the folder's main result inside a folder; {} if absent."""
    if not path:
        return {}
    p = Path(path)
    if p.is_dir():
        found = sorted(p.glob("*.json"))
        p = found[0] if found else p
    try:
        return json.loads(p.read_text()) if p.is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}


def run_summary(params: Mapping[str, object], evaluation: Mapping, gate: Mapping, *,
                title: str = "SmartReco training run") -> str:
    """Parameters, per-model headline metrics, the gate's decision and whether the deploy step runs."""
    out = [f"# {title}", "", "## Parameters", "", md_table(["parameter", "value"], [[k, v] for k, v in params.items()])]
    models = evaluation.get("models", {}) if evaluation else {}
    if models:
        keys = [k for k in HEADLINE if any(k in m for m in models.values())]
        rows = [[name, *[m.get(k, "") for k in keys]] for name, m in models.items()]
        out += ["", "## Evaluation (ARCHITECTURE §5 protocol)", "", md_table(["model", *keys], rows)]
    if gate:
        promoted = bool(gate.get("promoted"))
        out += ["", "## Registry and gate", "",
                md_table(["model", "version", "alias"],
                         [[k, v, "champion + challenger" if promoted else "challenger"]
                          for k, v in (gate.get("versions") or {}).items()]),
                "", *[f"- {r}" for r in gate.get("reasons", [])], "",
                "**Promoted: the deploy step renders and applies the SeldonDeployment.**" if promoted
                else "**Gate failed: registered as challenger only; nothing is deployed.**"]
        if gate.get("tracking_uri"):
            out += ["", f"MLflow: `{gate['tracking_uri']}`"]
    return "\n".join(out) + "\n"
