"""A node's loaded bundle leaves the collector's generations (a full collection no longer walks it during
requests), and a reload frees the replaced bundle although its objects were frozen (inference_graph.base
freeze_loaded).

Each check runs in a fresh child interpreter, as a node process is: in the pytest process every load would
collect (and a reload unfreeze) the heap of the hundreds of tests before it, which took over a minute in a
full run, and the freeze would outlive the test."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = [pytest.mark.unit]

ROOT = Path(__file__).resolve().parents[2]

PRELUDE = """
import gc, weakref
import inference_graph.bundle_node as bundle_node
from inference_graph.bundle_node import BundleNode

class CyclicBundle:
    # a bundle whose objects sit in a reference cycle, as real ones can: only the cycle collector frees it,
    # and it never looks at frozen objects
    def __init__(self, version):
        self.version = version
        self.me = self

def in_generations(obj):
    # whether the collector still walks obj (gc.get_objects lists generations 0-2, not the frozen ones)
    return any(o is obj for o in gc.get_objects())

bundle_node.load_bundle = lambda uri: CyclicBundle(uri)
"""


def run_child(body: str) -> None:
    """Run ``PRELUDE`` + ``body`` in a fresh interpreter from the project root; its asserts fail the test."""
    code = PRELUDE + textwrap.dedent(body)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("ok"), proc.stdout[-2000:]


def test_a_load_freezes_the_loaded_bundle():
    run_child("""
        before = gc.get_freeze_count()
        node = BundleNode(model_uri="v1")
        node.load()
        assert gc.get_freeze_count() > before, (before, gc.get_freeze_count())
        assert node.model_version == "v1"
        assert not in_generations(node.bundle)
        print("ok")
    """)


def test_a_reload_frees_the_replaced_bundle():
    run_child("""
        node = BundleNode(model_uri="v1")
        node.load()
        old = weakref.ref(node.bundle)
        node.model_uri = "v2"
        node.load()  # no gc.collect() here: the reload itself must free the frozen old bundle's cycle
        assert old() is None, "the replaced bundle is still alive"
        assert node.model_version == "v2"
        assert not in_generations(node.bundle)
        print("ok")
    """)


def test_parts_sharing_a_bundle_free_it_once_all_have_reloaded():
    """The fused arm's way: each part loads the one bundle object it is handed."""
    run_child("""
        parts = [BundleNode() for _ in range(3)]
        first = CyclicBundle("v1")
        for part in parts:
            part.load(first)
        old = weakref.ref(first)
        del first
        second = CyclicBundle("v2")
        for part in parts[:-1]:
            part.load(second)
        assert old() is not None  # the last part still serves it
        parts[-1].load(second)
        assert old() is None, "the replaced bundle is still alive"
        assert not in_generations(second)
        print("ok")
    """)
