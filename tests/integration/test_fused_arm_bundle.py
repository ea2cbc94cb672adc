"""The fused arm loads each model bundle once for all its parts (CF, CB, combiner), and a part with its own
``*_model_uri`` still gets its own bundle."""

import pytest

pytest.importorskip("seldon_core")  # serving venv only (collected but deselected elsewhere)

import graph_fake_bundle as fake  # noqa: E402

import inference_graph.hybrid_recommender as hr  # noqa: E402

pytestmark = [pytest.mark.serving, pytest.mark.integration]


@pytest.fixture
def loads(tmp_path, monkeypatch):
    """The URIs the fused arm asked the bundle loader for (the fake bundle behind each)."""
    monkeypatch.setenv("SMARTRECO_FEATURE_READER", "graph_fake_bundle:read_features")
    monkeypatch.setenv("SMARTRECO_GRAPH_STATE", str(tmp_path / "state.sqlite"))
    monkeypatch.setenv("SMARTRECO_LIVE_ITEMS_REFRESH_S", "-1")  # the bundle itself, no live view around it
    asked: list[str] = []

    def load(uri: str) -> fake.FakeBundle:
        asked.append(uri)
        return fake.load(uri)

    monkeypatch.setattr(hr, "load_bundle", load)
    return asked


def test_one_uri_is_loaded_once_and_shared_by_every_part(tmp_path, loads):
    uri = str(fake.write(tmp_path / "bundle"))
    node = hr.HybridRecommender(model_uri=uri, cache="off")
    node.load()
    assert loads == [uri]
    assert node.cf.bundle is node.cb.bundle is node.combiner.bundle
    out = node.predict({"user_id": "7", "num_recommendations": 5})
    assert len(out["recommendations"]) == 5


def test_a_part_with_its_own_uri_gets_its_own_bundle(tmp_path, loads):
    uri = str(fake.write(tmp_path / "bundle"))
    cf_uri = str(fake.write(tmp_path / "cf-bundle", version="fake-cf"))
    node = hr.HybridRecommender(model_uri=uri, cf_model_uri=cf_uri, cache="off")
    node.load()
    assert sorted(loads) == sorted([uri, cf_uri])
    assert node.cf.bundle.version == "fake-cf" and node.combiner.bundle.version == "fake-1"
    assert node.cb.bundle is node.combiner.bundle
