"""A node's loaded bundle leaves the collector's generations (a full collection no longer walks it during
requests), and a reload frees the replaced bundle although its objects were frozen (inference_graph.base
freeze_loaded)."""

from __future__ import annotations

import gc
import weakref

import pytest

import inference_graph.bundle_node as bundle_node
from inference_graph.bundle_node import BundleNode

pytestmark = [pytest.mark.unit]


class CyclicBundle:
    """A bundle whose objects sit in a reference cycle, as real ones can: only the cycle collector frees it,
    and it never looks at frozen objects."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.me = self


@pytest.fixture(autouse=True)
def _unfreeze_after():
    """Leave the test process's collector as it was: nothing stays frozen for the tests that follow."""
    yield
    gc.unfreeze()


def in_generations(obj: object) -> bool:
    """Whether the collector still walks ``obj`` (gc.get_objects lists generations 0-2, not the frozen ones)."""
    return any(o is obj for o in gc.get_objects())


def test_a_load_freezes_the_loaded_bundle(monkeypatch):
    monkeypatch.setattr(bundle_node, "load_bundle", lambda uri: CyclicBundle(uri))
    gc.unfreeze()
    before = gc.get_freeze_count()
    node = BundleNode(model_uri="v1")
    node.load()
    assert gc.get_freeze_count() > before
    assert node.model_version == "v1"
    assert not in_generations(node.bundle)


def test_a_reload_frees_the_replaced_bundle(monkeypatch):
    monkeypatch.setattr(bundle_node, "load_bundle", lambda uri: CyclicBundle(uri))
    node = BundleNode(model_uri="v1")
    node.load()
    old = weakref.ref(node.bundle)
    node.model_uri = "v2"
    node.load()  # no gc.collect() here: the reload itself must free the frozen old bundle's cycle
    assert old() is None
    assert node.model_version == "v2"
    assert not in_generations(node.bundle)


def test_parts_sharing_a_bundle_free_it_once_all_have_reloaded():
    """The fused arm's way: each part loads the one bundle object it is handed."""
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
    assert old() is None
    assert not in_generations(second)
