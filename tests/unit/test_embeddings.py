"""MiniLM item embeddings: text building, content-hash cache, real encoder, ONNX parity."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from smartreco.data import columns as C
from smartreco.features import embeddings as E

pytestmark = [pytest.mark.unit]


def _items(titles: list[str]) -> pd.DataFrame:
    return pd.DataFrame({
        C.ITEM_ID: [str(i) for i in range(len(titles))],
        C.TITLE: titles,
        C.CATEGORY: ["Sci-Fi"] * len(titles),
        C.TAGS: [["space", "robots"]] * len(titles),
        C.DESCRIPTION: [""] * len(titles),
    })


def _fake_encoder(calls: list[list[str]]):
    def fake(texts, batch_size=128, show_progress=False):
        calls.append(list(texts))
        rows = [np.frombuffer(hashlib.sha256(t.encode()).digest() * 12, dtype=np.uint8)[: E.DIM] for t in texts]
        v = np.asarray(rows, dtype=np.float32).reshape(-1, E.DIM) + 1.0
        return v / np.linalg.norm(v, axis=1, keepdims=True)
    return fake


def test_item_texts_join_non_empty_parts():
    items = _items(["Alien (1979)"])
    assert E.item_texts(items).iloc[0] == "Alien (1979). Sci-Fi. space, robots"
    items[C.DESCRIPTION] = ["A crew meets a creature."]
    assert E.item_texts(items).iloc[0].endswith("robots. A crew meets a creature.")


def test_cache_hit_does_not_reencode(tmp_path, monkeypatch):
    calls: list[list[str]] = []
    monkeypatch.setattr(E, "encode_texts", _fake_encoder(calls))
    items = _items(["A", "B", "C", "A"])  # a duplicate text is encoded once
    first = E.encode_items(items, cache_dir=tmp_path)
    assert len(calls) == 1 and len(calls[0]) == 3
    np.testing.assert_array_equal(first[0], first[3])

    second = E.encode_items(items, cache_dir=tmp_path)
    assert len(calls) == 1  # everything came from the cache
    np.testing.assert_array_equal(first, second)

    items.loc[1, C.TITLE] = "B2"  # one edited item -> exactly one new text encoded
    reordered = items.iloc[[2, 1, 0]].reset_index(drop=True)
    third = E.encode_items(reordered, cache_dir=tmp_path)
    assert len(calls) == 2 and calls[1] == [E.item_texts(items).iloc[1]]
    np.testing.assert_array_equal(third[0], first[2])  # rows follow the input order
    np.testing.assert_array_equal(third[2], first[0])


@pytest.fixture(scope="module")
def minilm():
    return E.load_model()


def test_real_encoder_shape_norm_and_semantics(minilm, tmp_path):
    items = _items(["Star wars in space", "Galactic space battle", "Romantic comedy in Paris"])
    items[C.CATEGORY] = ["Sci-Fi", "Sci-Fi", "Romance"]
    items[C.TAGS] = [["space"], ["space"], ["love"]]
    vecs = E.encode_items(items, cache_dir=tmp_path)
    assert vecs.shape == (3, 384) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    sims = vecs @ vecs.T
    assert sims[0, 1] > sims[0, 2] + 0.1
    one = E.encode_texts("Galactic space battle. Sci-Fi. space")
    assert one.shape == (1, 384)
    np.testing.assert_allclose(one[0], vecs[1], atol=1e-5)


def test_onnx_text_encoder_matches_sentence_transformers(minilm, tmp_path_factory):
    folder = E.export_text_encoder_onnx(tmp_path_factory.mktemp("enc"))
    enc = E.OnnxTextEncoder(folder)
    texts = [
        "Toy Story (1995). Animation. pixar, fun",
        "x",
        "",
        " ".join(["a very long description that runs past the tokenizer's 128 token default"] * 30),
    ]
    ref = E.encode_texts(texts)
    got = enc.encode(texts, batch_size=3)  # two batches with different padded lengths
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() < 1e-4
