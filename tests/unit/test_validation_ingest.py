"""The ingest step reads the served traffic: the event log's interactions join the source's, so the next
training run learns from what users did with served answers; impressions and bare rewards stay out."""

from __future__ import annotations

import pandas as pd
import pytest

from smartreco.data import columns as C
from smartreco.errors import DataError
from smartreco.feedback import FeedbackLog
from smartreco.validation.ingest import ingest_tables
from smartreco.validation.result import validate_data

pytestmark = [pytest.mark.unit]


def _source(tmp_path) -> str:
    folder = tmp_path / "source"
    folder.mkdir()
    ts = pd.Timestamp.now(tz="UTC").floor("s")
    pd.DataFrame(
        {C.USER_ID: ["u1", "u2"], C.ITEM_ID: ["i1", "i2"], C.INTERACTION_TYPE: ["purchase", "click"],
         C.TIMESTAMP: [ts - pd.Timedelta(days=2), ts - pd.Timedelta(days=1)], C.RATING: [5.0, None]}
    ).to_parquet(folder / "interactions.parquet", index=False)  # fmt: skip
    pd.DataFrame({C.ITEM_ID: ["i1", "i2", "i3"], C.TITLE: ["a", "b", "c"], C.CATEGORY: ["x", "y", "x"]}).to_parquet(
        folder / "items.parquet", index=False
    )
    return str(folder)


def _traffic(log_dir) -> None:
    with FeedbackLog(log_dir) as log:
        log.append_impression({"request_id": "r1", "user_id": "u1", "items": ["i2", "i3"], "scores": [0.9, 0.1]})
        log.append_feedback({"feedback_id": "f1", "request_id": "r1", "user_id": "u1", "item_id": "i3",
                             "interaction_type": "like", "reward": 1.0})  # fmt: skip
        log.append_feedback({"feedback_id": "f2", "request_id": "r1", "user_id": "u3", "item_id": "i2",
                             "interaction_type": "click", "reward": 1.0, "channel": "mobile"})  # fmt: skip
        log.append_feedback({"feedback_id": "f3", "request_id": "r1", "user_id": "u1", "reward": 0.0})  # no item


def test_served_interactions_join_the_source(tmp_path):
    _traffic(tmp_path / "events")
    counts = ingest_tables(_source(tmp_path), tmp_path / "out", events=str(tmp_path / "events"))
    assert counts["served_interactions"] == 2 and counts["interactions"] == 4
    inter = pd.read_parquet(tmp_path / "out" / "interactions.parquet")
    served = inter.tail(2)
    assert served[C.USER_ID].tolist() == ["u1", "u3"] and served[C.ITEM_ID].tolist() == ["i3", "i2"]
    assert served[C.INTERACTION_TYPE].tolist() == ["like", "click"]
    assert str(inter[C.TIMESTAMP].dtype) == "datetime64[ns, UTC]"
    report = validate_data({"interactions": inter, "items": pd.read_parquet(tmp_path / "out" / "items.parquet")})
    assert report.passed, report.failure_message()


def test_without_events_nothing_is_added(tmp_path):
    counts = ingest_tables(_source(tmp_path), tmp_path / "out")
    assert counts == {"interactions": 2, "items": 3}


def test_an_events_path_that_is_no_log_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="events"):
        ingest_tables(_source(tmp_path), tmp_path / "out", events=str(tmp_path / "missing"))


def test_the_ingest_component_logs_the_served_rows(tmp_path):
    from kfp.dsl import Dataset, Metrics

    from components.ingest.component import ingest

    _traffic(tmp_path / "events")
    ds, metrics = Dataset(uri=str(tmp_path / "ds")), Metrics(uri=str(tmp_path / "m"))
    ingest.python_func(source=_source(tmp_path), dataset=ds, metrics=metrics, events=str(tmp_path / "events"))
    assert metrics.metadata["rows_served_interactions"] == 2 and metrics.metadata["rows_interactions"] == 4


def _live_store(path):
    import numpy as np

    from smartreco.serving.live_items import SqliteLiveStore, add_items, validate_rows

    store = SqliteLiveStore(path)
    rows = validate_rows(
        pd.DataFrame(
            {C.ITEM_ID: ["n1", "i2"], C.TITLE: ["New", "dup"], C.CATEGORY: ["x", "y"], C.TAGS: ["p|q", ""],
             C.CREATED_DATE: ["2026-12-01", None]}
        )
    )  # fmt: skip
    add_items(store, "v1", rows, np.ones((2, 4), dtype=np.float32), in_bundle=set())
    add_items(store, "v2", rows.iloc[:1], np.ones((1, 4), dtype=np.float32), in_bundle=set())  # another arm
    return store


def test_items_added_since_the_last_retrain_join_the_catalogue(tmp_path):
    from smartreco.serving.live_items import live_rows

    new = live_rows(_live_store(tmp_path / "state.sqlite"))
    assert sorted(new[C.ITEM_ID]) == ["i2", "n1"]  # each item once, whatever bundle versions it was encoded for
    counts = ingest_tables(_source(tmp_path), tmp_path / "out", new_items=new)
    assert counts["new_items"] == 1 and counts["items"] == 4  # i2 is the source's already: its row is kept
    items = pd.read_parquet(tmp_path / "out" / "items.parquet")
    assert items[C.ITEM_ID].tolist() == ["i1", "i2", "i3", "n1"] and items[C.TITLE].tolist()[1] == "b"
    inter = pd.read_parquet(tmp_path / "out" / "interactions.parquet")
    report = validate_data({"interactions": inter, "items": items})
    assert report.passed, report.failure_message()


def test_the_ingest_component_reads_the_live_items_from_the_graph_state(tmp_path):
    from kfp.dsl import Dataset, Metrics

    from components.ingest.component import ingest

    _live_store(tmp_path / "state.sqlite")
    ds, metrics = Dataset(uri=str(tmp_path / "ds")), Metrics(uri=str(tmp_path / "m"))
    ingest.python_func(source=_source(tmp_path), dataset=ds, metrics=metrics, live_items=str(tmp_path / "state.sqlite"))
    assert metrics.metadata["rows_new_items"] == 1 and metrics.metadata["rows_items"] == 4
