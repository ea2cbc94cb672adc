"""The local executor keeps only Seldon's executor semantics (and, in gateway.py, an ingress gateway's
duties): everything the product learns from happens in the graph nodes, so it happens under Seldon's own
executor on a cluster too. The executor package therefore imports none of the product's learning code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = [pytest.mark.unit]

EXECUTOR = Path(__file__).resolve().parents[2] / "inference_graph" / "executor"
FORBIDDEN = ("smartreco.feedback", "smartreco.serving.online_learning", "smartreco.experiments")


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.append((node.lineno, node.module))
            out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]  # from smartreco import feedback
    return out


def _forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def test_the_executor_imports_no_product_learning_code():
    files = sorted(EXECUTOR.rglob("*.py"))
    assert len(files) >= 10, "the executor package moved?"
    found = [f"{p.relative_to(EXECUTOR.parent.parent)}:{line}: {name}" for p in files for line, name in _imports(p)
             if _forbidden(name)]  # fmt: skip
    assert found == [], "\n".join(found)


def test_the_check_sees_every_import_form(tmp_path):
    sample = tmp_path / "x.py"
    sample.write_text(
        "import smartreco.feedback.log\nfrom smartreco import experiments\n"
        "from smartreco.serving.online_learning import ONLINE_KEY\nfrom smartreco.serving import cache\n"
    )
    assert [n for _, n in _imports(sample) if _forbidden(n)] == [
        "smartreco.feedback.log", "smartreco.experiments", "smartreco.serving.online_learning",
        "smartreco.serving.online_learning.ONLINE_KEY",
    ]  # fmt: skip
