"""The layer map of docs/architecture.md, checked on the imports (ast, lazy imports included; ``TYPE_CHECKING``
blocks excluded) of smartreco/, inference_graph/, components/ and pipelines/: a unit imports only units of its
own layer or below, nothing imports benchmarks/ or tests/ (or the test fakes in smartreco.testing), and the
smartreco subpackages import each other without cycles. Known departures are listed in ``ALLOWED`` with why."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

pytestmark = [pytest.mark.unit]

ROOT = Path(__file__).resolve().parents[2]
CODE_DIRS = ("smartreco", "inference_graph", "components", "pipelines")
FORBIDDEN = ("benchmarks", "tests", "smartreco.testing")

#: unit -> layer; a unit may import units of its own layer or a lower one (docs/architecture.md, "Layer map")
LAYERS: dict[str, int] = {
    # 0 foundation: no smartreco imports beyond each other
    "smartreco": 0, "smartreco.errors": 0, "smartreco.settings": 0, "smartreco.paths": 0, "smartreco.images": 0,
    "smartreco.run_summary": 0, "smartreco.processes": 0, "smartreco.provenance": 0, "smartreco.ports": 0,
    # 1 data: canonical tables, request schema, validation, the durable feedback log's records
    "smartreco.data": 1, "smartreco.schema": 1, "smartreco.validation": 1, "smartreco.feedback": 1,
    # 2 features (and the explanations built from them)
    "smartreco.features": 2, "smartreco.explain": 2,
    # 3 models
    "smartreco.models": 3,
    # 4 above models: retrieval/serving, evaluation, experiments, drift monitoring, the event service
    "smartreco.retrieval": 4, "smartreco.serving": 4, "smartreco.evaluation": 4, "smartreco.experiments": 4,
    "smartreco.monitoring": 4, "smartreco.events": 4,
    # 5 steps: what a pipeline step or a deploy does (tracking/registry, training, batch, promotion, images)
    "smartreco.tracking": 5, "smartreco.training": 5, "smartreco.batch": 5, "smartreco.promotion": 5,
    "smartreco.deploy": 5, "smartreco.containers": 5,
    # the cluster rehearsal runs rendered manifests on the engine (containers) - a deploy-time step
    "smartreco.rehearse": 5,
    # 6 the graph: Seldon nodes and the local executor
    "inference_graph": 6,
    # 7 on top: command line, web app, KFP components and pipelines
    "smartreco.cli": 7, "smartreco.web": 7, "smartreco.__main__": 7, "components": 7, "pipelines": 7,
    # helpers for tests and benchmarks only (FORBIDDEN to every product module): on top, they may use anything
    "smartreco.testing": 7,
}

#: (importing module, imported unit) that go against the layer map today, each with why it stays
ALLOWED: dict[tuple[str, str], str] = {
    # models validate while they fit (early stopping / tuning on a held-out split) with the evaluation
    # protocol's metrics and split; moving metrics/split below models is the fix (they import nothing above).
    ("smartreco.models.cf", "smartreco.evaluation"): "validation metrics/split during fit",
    ("smartreco.models.hybrid", "smartreco.evaluation"): "validation split during fit",
    ("smartreco.models.baselines", "smartreco.evaluation"): "hyper-parameter tuning of the peers (lazy import)",
    # the hybrid writes/reads its serving bundle (lazy import): export belongs to the serving layer
    ("smartreco.models.hybrid", "smartreco.serving"): "save_bundle / ModelBundle for export (lazy import)",
}
#: cycles between smartreco subpackages that the entries above cause (the same two departures)
ALLOWED_CYCLES = {frozenset({"smartreco.models", "smartreco.evaluation"}),
                  frozenset({"smartreco.models", "smartreco.serving"})}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def unit_of(module: str) -> str:
    """``smartreco.features.store`` -> ``smartreco.features``; ``inference_graph.executor.x`` -> ``inference_graph``."""
    parts = module.split(".")
    if parts[0] == "smartreco" and len(parts) > 1:
        return f"smartreco.{parts[1]}"
    return parts[0]


def _is_module(dotted: str) -> bool:
    base = ROOT.joinpath(*dotted.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return skip


def imports_of(path: Path) -> list[tuple[str, int]]:
    """(imported module, line) for every import in ``path``, ``from pkg import sub`` resolved to ``pkg.sub``."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    skip = _type_checking_nodes(tree)
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                out.append((full if _is_module(full) else base, node.lineno))
    return sorted(set(out), key=lambda x: (x[1], x[0]))


def project_imports() -> list[tuple[str, str, int]]:
    """(importing module, imported module, line) for imports of project code (or of benchmarks/tests)."""
    roots = {*CODE_DIRS, "benchmarks", "tests", "feature_repo"}
    out = []
    for d in CODE_DIRS:
        for path in sorted((ROOT / d).rglob("*.py")):
            src = module_name(path)
            out += [(src, dst, line) for dst, line in imports_of(path) if dst.split(".")[0] in roots]
    return out


def layer_violations(edges: list[tuple[str, str, int]]) -> list[str]:
    problems = []
    for src, dst, line in edges:
        s, d = unit_of(src), unit_of(dst)
        if any(dst == f or dst.startswith(f + ".") for f in FORBIDDEN):
            problems.append(f"{src}:{line} imports {dst} (nothing imports benchmarks, tests or test fakes)")
            continue
        if s == d:
            continue
        if s not in LAYERS or d not in LAYERS:
            problems.append(f"{src}:{line} -> {dst}: place {s if s not in LAYERS else d} in LAYERS "
                            "(tests/unit/test_architecture_imports.py and docs/architecture.md)")
        elif LAYERS[d] > LAYERS[s] and (src, d) not in ALLOWED:
            problems.append(f"{src}:{line} imports {dst}: layer {LAYERS[d]} ({d}) above layer {LAYERS[s]} ({s})")
    return problems


def package_cycles(edges: list[tuple[str, str, int]]) -> list[frozenset[str]]:
    """Strongly connected sets (size > 1) of smartreco subpackages (Tarjan)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for src, dst, _ in edges:
        s, d = unit_of(src), unit_of(dst)
        if s != d and s.startswith("smartreco.") and d.startswith("smartreco."):
            graph[s].add(d)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(frozenset(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _pairwise(cycle: frozenset[str], edges: list[tuple[str, str, int]]) -> set[frozenset[str]]:
    """The 2-cycles inside a strongly connected set, to compare with ALLOWED_CYCLES."""
    pairs = {(unit_of(s), unit_of(d)) for s, d, _ in edges}
    return {frozenset({a, b}) for a in cycle for b in cycle if a < b and (a, b) in pairs and (b, a) in pairs}


@pytest.fixture(scope="module")
def edges() -> list[tuple[str, str, int]]:
    return project_imports()


def test_imports_follow_the_layer_map(edges):
    assert layer_violations(edges) == []


def test_no_import_cycles_between_smartreco_subpackages(edges):
    unexplained = []
    for cycle in package_cycles(edges):
        pairs = _pairwise(cycle, edges)
        # a set of packages is explained when removing the allowed 2-cycles' back edges breaks it
        allowed_back = {(a, b) for pair in ALLOWED_CYCLES & pairs for a in pair for b in pair
                        if a != b and LAYERS.get(a, 0) < LAYERS.get(b, 0)}
        rest = [(s, d, n) for s, d, n in edges if (unit_of(s), unit_of(d)) not in allowed_back]
        if any(c & cycle for c in package_cycles(rest)):
            unexplained.append(sorted(cycle))
    assert unexplained == []


def test_the_allow_list_is_not_stale(edges):
    """An allowed departure that no longer exists must leave the list (the map only gets stricter)."""
    present = {(src, unit_of(dst)) for src, dst, _ in edges}
    assert [key for key in ALLOWED if key not in present] == []


# ------------------------------------------------------------------------------ the checks can fail
def test_an_upward_import_and_a_test_import_are_reported():
    edges = [("smartreco.data.io", "smartreco.models.base", 3), ("smartreco.features.store", "tests.conftest", 9),
             ("smartreco.models.base", "benchmarks.scale", 2), ("smartreco.cli.serve", "smartreco.models.base", 1),
             ("smartreco.newpkg.x", "smartreco.data", 1)]
    problems = layer_violations(edges)
    assert problems[0] == "smartreco.data.io:3 imports smartreco.models.base: layer 3 (smartreco.models) above " \
                          "layer 1 (smartreco.data)"
    assert "tests.conftest" in problems[1] and "benchmarks.scale" in problems[2]
    assert "place smartreco.newpkg in LAYERS" in problems[3] and len(problems) == 4


def test_a_cycle_is_found():
    edges = [("smartreco.a.x", "smartreco.b.y", 1), ("smartreco.b.y", "smartreco.c.z", 1),
             ("smartreco.c.z", "smartreco.a.x", 1), ("smartreco.c.z", "smartreco.d", 1)]
    assert package_cycles(edges) == [frozenset({"smartreco.a", "smartreco.b", "smartreco.c"})]


def test_imports_resolve_to_modules(tmp_path, monkeypatch):
    assert unit_of("inference_graph.executor.engine") == "inference_graph"
    assert ("smartreco.settings", 7) in imports_of(ROOT / "smartreco/paths.py")  # `from smartreco import settings`
    pkg = tmp_path / "smartreco" / "features"
    pkg.mkdir(parents=True)
    (tmp_path / "smartreco" / "models.py").write_text("")
    (pkg / "x.py").write_text("from typing import TYPE_CHECKING\nfrom .. import models\n"
                               "if TYPE_CHECKING:\n    import smartreco.cli\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)  # relative imports resolve against this tree
    assert imports_of(pkg / "x.py") == [("typing", 1), ("smartreco.models", 2)]
