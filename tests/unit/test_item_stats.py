"""One item-statistics builder: the hybrid's in-memory item side and the 10M path's streamed batches
give the same features for the same data (no train/serve skew between the small and the large bundle)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hybrid_tiny import tiny_data

from smartreco.data import columns as C
from smartreco.models import hybrid_features as F
from smartreco.models.base import InteractionMatrix
from smartreco.models.hybrid import EventIndex, HybridConfig, item_side
from smartreco.models.item_stats import EVENT_COLUMNS, item_event_stats
from smartreco.retrieval import build

pytestmark = [pytest.mark.unit]


def _streamed(inter: pd.DataFrame, index: pd.Index, chunk: int, unit: str = "ns"):
    """The interactions as the 10M path reads them: parquet-like record batches + aligned item rows."""
    frame = inter[[C.ITEM_ID, *[c for c in EVENT_COLUMNS if c in inter]]].copy()
    frame[C.TIMESTAMP] = frame[C.TIMESTAMP].astype(f"datetime64[{unit}, UTC]")
    for batch in pa.Table.from_pandas(frame, preserve_index=False).to_batches(max_chunksize=chunk):
        rows = index.get_indexer(batch.column(0).to_pandas())
        yield rows, batch


@pytest.mark.parametrize("unit", ["ns", "us"])
def test_the_small_and_the_streamed_path_give_the_same_item_features(unit):
    data = tiny_data()
    inter, items = data.interactions, data.items
    index = pd.Index(items[C.ITEM_ID].to_numpy())
    pos = InteractionMatrix.build(inter, index.to_numpy(), positives_only=True).matrix
    side = item_side(inter, items, pos, HybridConfig(nbr_k=5, all_interactions_table=False), None, None)
    cutoff = float(inter[C.TIMESTAMP].max().value // 1_000_000_000) + 1.0
    assert build.item_event_stats is item_event_stats, "the 10M path must use the hybrid's builder"
    stats = build.item_event_stats(_streamed(inter, index, chunk=333, unit=unit), len(index), cutoff,
                                   side.channel_vocab, side.device_vocab)
    np.testing.assert_array_equal(stats["item_count"], side.item_count)
    np.testing.assert_allclose(stats["item_mean_rating"], side.item_mean_rating, rtol=1e-6, equal_nan=True)
    for name in ("ctx_channel", "ctx_device", "ctx_hour"):
        np.testing.assert_allclose(stats[name], getattr(side, name), rtol=1e-6, atol=1e-7, err_msg=name)
    assert side.ctx_hour.shape[1] == F.HOUR_BUCKETS and side.ctx_channel[side.item_count > 0].sum(1).max() > 0
    # the popularity windows the bundle stores equal the hybrid's own window counts at the same cutoff
    events = EventIndex.build(inter, index)
    np.testing.assert_array_equal(stats["pop_short"], events.counts(len(index), cutoff, F.POP_SHORT_DAYS))
    np.testing.assert_array_equal(stats["pop_long"], events.counts(len(index), cutoff, F.POP_LONG_DAYS))
