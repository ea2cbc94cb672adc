"""Feedback log: durability contract (ack after fsync, torn tail, SIGKILL), idempotency, rotation,
compaction and the dataset view."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from smartreco.data import columns as C
from smartreco.errors import DataError
from smartreco.feedback import FeedbackLog, FeedbackLogError, iter_records, read_dataset, read_interactions
from smartreco.feedback.crashcheck import run_trial
from smartreco.feedback.dataset import DATASET_COLUMNS, read_impressions
from smartreco.feedback.log import encode_record, list_segments

pytestmark = [pytest.mark.unit]


def fb(i: int, **kw) -> dict:
    return {
        "feedback_id": f"f{i}",
        "user_id": str(i % 5),
        "item_id": str(100 + i),
        "interaction_type": "click",
        "reward": 1.0,
        "request_id": f"r{i}",
        "variant": "a",
        **kw,
    }


def imp(i: int) -> dict:
    return {
        "request_id": f"r{i}",
        "user_id": str(i % 5),
        "variant": "a",
        "items": ["7", str(100 + i), "9"],
        "scores": [0.9, 0.5, 0.1],
    }


def test_duplicate_ids_are_acked_once_and_survive_restart(tmp_path):
    with FeedbackLog(tmp_path) as log:
        first = log.append(fb(1))
        again = log.append(fb(1, reward=5.0))  # a retry: same id, must not be stored twice
        batch = log.append_many([fb(2), fb(2), fb(3)])
    assert not first.duplicate and again.duplicate
    assert [r.duplicate for r in batch] == [False, True, False]
    with FeedbackLog(tmp_path) as log:  # index rebuilt from disk
        assert log.append(fb(1)).duplicate
        assert not log.append(fb(4)).duplicate
    ids = [r["id"] for r in iter_records(tmp_path, dedupe=False)]
    assert ids == ["f1", "f2", "f3", "f4"]
    assert next(iter_records(tmp_path))["reward"] == 1.0


def test_missing_feedback_id_gets_a_content_id_so_blind_retries_are_idempotent(tmp_path):
    payload = {"user_id": 42, "item_id": 318, "interaction_type": "like", "request_id": "r9"}
    with FeedbackLog(tmp_path) as log:
        a = log.append(payload)
        b = log.append(dict(payload))
        c = log.append({**payload, "interaction_type": "click"})
    assert a.id == b.id and b.duplicate and a.id != c.id and not c.duplicate


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"item_id": "1", "interaction_type": "click"}, "user_id"),
        ({"user_id": "1", "item_id": "1", "interaction_type": "teleport"}, "interaction_type"),
        ({"user_id": "1", "item_id": "1"}, "interaction_type"),
        ({"user_id": "1", "item_id": "1", "interaction_type": "click", "colour": "red"}, "colour"),
        ({"user_id": "1", "reward": "lots"}, "reward"),
    ],
)
def test_bad_feedback_is_rejected_with_the_field_named(tmp_path, payload, field):
    with FeedbackLog(tmp_path) as log, pytest.raises(DataError, match=field):
        log.append(payload)


def test_seldon_style_truth_and_pydantic_feedback_are_accepted(tmp_path):
    from smartreco.schema import Feedback

    msg = Feedback(
        feedback_id="x1", user_id="3", reward=1, truth={"item_id": 55, "interaction_type": "click"}
    )
    with FeedbackLog(tmp_path) as log:
        log.append(msg)
    rec = next(iter_records(tmp_path))
    assert (rec["item_id"], rec["interaction_type"], rec["id"]) == ("55", "click", "x1")


def test_torn_tail_is_truncated_and_mid_file_corruption_skipped(tmp_path):
    with FeedbackLog(tmp_path) as log:
        for i in range(5):
            log.append(fb(i))
    seg = list_segments(tmp_path)[-1][1]
    lines = seg.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"f2"', b'"fX"')  # CRC no longer matches: bit rot in the middle
    torn = encode_record({"kind": "feedback", "id": "f99", "user_id": "1"})[:-7]  # crash mid-write
    seg.write_bytes(b"".join(lines) + torn)
    with FeedbackLog(tmp_path) as log:
        assert log.recovery.truncated_bytes == len(torn)
        assert log.recovery.corrupt == 1
        assert log.recovery.records == 4
        log.append(fb(10))  # appends land after the cut, on a clean line boundary
    assert [r["id"] for r in iter_records(tmp_path)] == ["f0", "f1", "f3", "f4", "f10"]


def test_rotation_seals_segments_with_an_id_cache(tmp_path):
    with FeedbackLog(tmp_path, max_segment_bytes=600) as log:
        for i in range(20):
            log.append(fb(i))
    segs = list_segments(tmp_path)
    assert len(segs) > 3
    for _, path in segs[:-1]:
        cache = json.loads(path.with_suffix(".ids").read_text())
        assert cache["segment_bytes"] == path.stat().st_size
    # a stale cache (segment changed behind its back) is ignored and rebuilt from the segment
    path = segs[0][1]
    path.with_suffix(".ids").write_text(json.dumps({"segment_bytes": 1, "ids": []}))
    with FeedbackLog(tmp_path, max_segment_bytes=600) as log:
        assert len(log) == 20
        assert log.append(fb(0)).duplicate


def test_compaction_drops_duplicates_corrupt_lines_and_old_records(tmp_path):
    old = datetime(2020, 1, 1, tzinfo=UTC)
    with FeedbackLog(tmp_path, max_segment_bytes=10**9) as log:
        log.append(fb(0, ts=old))
        log.append(fb(1))
        log.rotate()
        log.append(fb(2))
        log.rotate()
        log.append(fb(3))
    # duplicates can only come from outside (e.g. a merged log); plant one plus a corrupt line
    seg2 = list_segments(tmp_path)[1][1]
    dup = next(r for r in iter_records(tmp_path) if r["id"] == "f1")
    seg2.write_bytes(seg2.read_bytes() + b"deadbeef {}\n" + encode_record(dup))
    assert sum(1 for _ in iter_records(tmp_path, dedupe=False)) == 5
    with FeedbackLog(tmp_path, max_segment_bytes=10**9) as log:
        stats = log.compact(drop_before=old + timedelta(days=1))
        assert not log.append(fb(0)).duplicate  # dropped by retention: its id left the index
    assert stats["dropped_duplicates"] == 1 and stats["dropped_old"] == 1 and stats["dropped_corrupt"] == 1
    assert [r["id"] for r in iter_records(tmp_path, dedupe=False)] == ["f1", "f2", "f3", "f0"]


def test_a_second_writer_is_refused(tmp_path):
    with FeedbackLog(tmp_path), pytest.raises(FeedbackLogError, match="another process"):
        FeedbackLog(tmp_path)


def test_read_dataset_gives_canonical_columns_and_exploded_impressions(tmp_path):
    with FeedbackLog(tmp_path) as log:
        for i in range(3):
            log.append_impression(imp(i))
            log.append_feedback(fb(i))
        log.append_feedback({"user_id": "9", "reward": 0.0, "request_id": "r0"})  # bare reward, no item
    df = read_dataset(tmp_path)
    assert tuple(df.columns) == DATASET_COLUMNS
    assert str(df[C.TIMESTAMP].dtype) == "datetime64[ns, UTC]"
    imps = read_impressions(tmp_path)
    assert len(imps) == 9 and imps[C.RANK].tolist()[:3] == [1, 2, 3] and imps[C.SCORE].iloc[0] == 0.9
    inter = read_interactions(tmp_path)
    assert len(inter) == 3 and set(inter[C.INTERACTION_TYPE]) == {"click"}
    from smartreco.data.canonical import canonical_interactions

    canon = canonical_interactions(inter)  # the next training run can take it as is
    assert len(canon) == 3
    assert read_dataset(tmp_path, include_impressions=False)["event"].eq("feedback").all()


def test_empty_log_reads_as_an_empty_frame(tmp_path):
    FeedbackLog(tmp_path).close()
    df = read_dataset(tmp_path)
    assert df.empty and tuple(df.columns) == DATASET_COLUMNS
    with pytest.raises(FeedbackLogError, match="not found"):
        read_dataset(tmp_path / "nope")


def test_sigkill_mid_stream_loses_no_acknowledged_record(tmp_path):
    """Child appends (fsync) then acks over a pipe; parent SIGKILLs it mid-stream, twice, then reopens."""
    results = [run_trial(tmp_path, n_records=300, kill_after=k, start=s) for s, k in ((0, 40), (1000, 110))]
    for r in results:
        assert r["killed"] and r["returncode"] == -9
        assert r["missing_acked"] == []
        assert r["acked"] <= r["recovered"] <= r["sent"]
        assert r["acked"] >= 40
    df = read_dataset(tmp_path)  # still a readable dataset
    assert len(df) == sum(r["recovered"] for r in results)
    assert df["feedback_id"].is_unique
    assert isinstance(df, pd.DataFrame)
