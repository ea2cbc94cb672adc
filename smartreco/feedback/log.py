"""Durable, append-only feedback log: fsync before acknowledging, idempotent on the record id.

Layout of a log directory::

    segment-000000000001.log   sealed (read-only) segment
    segment-000000000001.ids   its id list, written when it was sealed (a rebuildable cache)
    segment-000000000002.log   the active segment (the only one ever appended to)
    LOCK                       flock'd by the single writer process

Each record is one line ``<crc32 of the JSON, 8 hex> <JSON>\\n``: greppable, and a torn write (crash
mid-append) shows up as a last line without newline or with a bad CRC. Opening a log truncates such
a tail, so what remains is exactly the acknowledged records plus possibly complete-but-unacked ones
(a retry of those is recognised by its id). Why not a broker: none is needed for one executor; a
Kafka/Redis stream can replace this class behind the same ``append`` contract where one is run.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import threading
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from smartreco.errors import SmartRecoError
from smartreco.feedback.records import FEEDBACK, IMPRESSION, make_record, record_key

log = logging.getLogger(__name__)

SEGMENT_RE = re.compile(r"^segment-(\d{12})\.log$")
DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024


class FeedbackLogError(SmartRecoError):
    """The log directory cannot be used (locked by another writer, unreadable, ...)."""


@dataclass(frozen=True)
class AppendResult:
    id: str
    kind: str
    duplicate: bool  # True: an earlier append with this id was already durable; nothing was written


@dataclass(frozen=True)
class ScanStats:
    records: int
    corrupt: int  # bad-CRC / unparsable complete lines skipped (not at the tail)
    truncated_bytes: int  # torn tail removed from the active segment on open


def _segment_name(n: int) -> str:
    return f"segment-{n:012d}.log"


def encode_record(record: dict[str, Any]) -> bytes:
    payload = json.dumps(record, separators=(",", ":"), ensure_ascii=True, default=str).encode()
    return b"%08x " % zlib.crc32(payload) + payload + b"\n"


def decode_line(line: bytes) -> dict[str, Any] | None:
    """The record of one complete line, or None when its CRC or JSON is bad."""
    if len(line) < 11 or line[8:9] != b" " or not line.endswith(b"\n"):
        return None
    payload = line[9:-1]
    try:
        if int(line[:8], 16) != zlib.crc32(payload):
            return None
        rec = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    return rec if isinstance(rec, dict) and "kind" in rec and "id" in rec else None


def scan_segment(path: Path) -> tuple[list[dict[str, Any]], int, int]:
    """(valid records, bad lines *between* valid ones, byte offset just past the last valid record).

    Bad bytes after the last valid record are the torn tail, not counted as corrupt.
    """
    records: list[dict[str, Any]] = []
    corrupt = pending = 0
    good_end = offset = 0
    with open(path, "rb") as fh:
        for line in fh:
            offset += len(line)
            rec = decode_line(line)
            if rec is None:
                pending += 1
                continue
            corrupt += pending
            pending = 0
            records.append(rec)
            good_end = offset
    return records, corrupt, good_end


def list_segments(directory: Path) -> list[tuple[int, Path]]:
    out = []
    for p in directory.iterdir():
        m = SEGMENT_RE.match(p.name)
        if m:
            out.append((int(m.group(1)), p))
    return sorted(out)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes, fsync: bool = True) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        if fsync:
            os.fsync(fh.fileno())
    os.replace(tmp, path)
    if fsync:
        _fsync_dir(path.parent)


class FeedbackLog:
    """Single-writer durable log. ``append`` returns only after the record is on disk (fsync).

    Thread-safe within a process; a second process opening the same directory for writing fails
    fast (flock) instead of interleaving. Readers (:func:`iter_records`, ``read_dataset``) need no lock.
    The idempotency index (all ids in the log) is rebuilt on open from the sealed segments' ``.ids``
    files plus a scan of the active segment, so it survives restarts and crashes.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        max_segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        fsync: bool = True,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_segment_bytes = int(max_segment_bytes)
        self.fsync = fsync
        self._lock = threading.Lock()
        self._lock_fh = open(self.directory / "LOCK", "a+b")  # noqa: SIM115 - held for the log's lifetime
        try:
            fcntl.flock(self._lock_fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_fh.close()
            raise FeedbackLogError(
                f"{self.directory}: feedback log is open for writing by another process"
            ) from None
        self._ids: set[str] = set()
        self.recovery = self._recover()
        self._fh = open(self._active_path, "ab")  # noqa: SIM115 - closed in close()
        self._size = self._fh.tell()

    # ---- recovery -------------------------------------------------------------------------
    def _recover(self) -> ScanStats:
        segments = list_segments(self.directory)
        if not segments:
            self._active_no = 1
            self._active_path = self.directory / _segment_name(1)
            self._active_path.touch()
            _fsync_dir(self.directory)
            return ScanStats(0, 0, 0)
        total = corrupt = 0
        for _, path in segments[:-1]:
            ids = self._load_ids(path)
            if ids is None:
                recs, bad, _ = scan_segment(path)
                ids = [record_key(r) for r in recs]
                corrupt += bad
                self._write_ids(path, ids)
            self._ids.update(ids)
            total += len(ids)
        self._active_no, self._active_path = segments[-1]
        recs, bad, good_end = scan_segment(self._active_path)
        size = self._active_path.stat().st_size
        truncated = size - good_end
        if truncated:
            # everything after the last valid record is a torn write: it was never acknowledged
            with open(self._active_path, "r+b") as fh:
                fh.truncate(good_end)
                fh.flush()
                os.fsync(fh.fileno())
            log.warning("%s: truncated %d byte(s) of torn tail", self._active_path, truncated)
        self._ids.update(record_key(r) for r in recs)
        total += len(recs)
        return ScanStats(total, bad + corrupt, truncated)

    @staticmethod
    def _ids_path(segment: Path) -> Path:
        return segment.with_suffix(".ids")

    def _load_ids(self, segment: Path) -> list[str] | None:
        path = self._ids_path(segment)
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_bytes())
            if data.get("segment_bytes") != segment.stat().st_size:
                return None  # the segment changed after the cache was written (e.g. compaction crash)
            return list(data["ids"])
        except (ValueError, KeyError, TypeError):
            return None

    def _write_ids(self, segment: Path, ids: list[str]) -> None:
        body = json.dumps({"segment_bytes": segment.stat().st_size, "ids": ids}).encode()
        _atomic_write(self._ids_path(segment), body, fsync=self.fsync)

    # ---- writing --------------------------------------------------------------------------
    def __contains__(self, key: str) -> bool:
        return key in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def append(self, payload: Any, kind: str = FEEDBACK) -> AppendResult:
        """Validate, write and fsync one record; a known id is acknowledged without writing again."""
        return self.append_many([payload], kind=kind)[0]

    def append_feedback(self, payload: Any) -> AppendResult:
        return self.append(payload, kind=FEEDBACK)

    def append_impression(self, payload: Any) -> AppendResult:
        return self.append(payload, kind=IMPRESSION)

    def append_many(self, payloads: Iterable[Any], kind: str = FEEDBACK) -> list[AppendResult]:
        """Group commit: all new records are written, then one fsync acknowledges them together."""
        records = [make_record(kind, p) for p in payloads]
        results: list[AppendResult] = []
        with self._lock:
            if self._fh.closed:
                raise FeedbackLogError(f"{self.directory}: feedback log is closed")
            batch: list[bytes] = []
            fresh: set[str] = set()
            for rec in records:
                key = record_key(rec)
                dup = key in self._ids or key in fresh
                results.append(AppendResult(rec["id"], rec["kind"], dup))
                if not dup:
                    fresh.add(key)
                    batch.append(encode_record(rec))
            if batch:
                data = b"".join(batch)
                self._fh.write(data)
                self._fh.flush()
                if self.fsync:
                    os.fsync(self._fh.fileno())
                self._size += len(data)
                self._ids.update(fresh)  # only after the data is durable
                if self._size >= self.max_segment_bytes:
                    self._rotate()
        return results

    def _rotate(self) -> None:
        """Seal the active segment (write its id cache) and start the next one."""
        self._fh.close()
        recs, _, _ = scan_segment(self._active_path)
        self._write_ids(self._active_path, [record_key(r) for r in recs])
        self._active_no += 1
        self._active_path = self.directory / _segment_name(self._active_no)
        self._fh = open(self._active_path, "ab")  # noqa: SIM115
        self._size = 0
        if self.fsync:
            _fsync_dir(self.directory)

    def rotate(self) -> None:
        with self._lock:
            if self._size:
                self._rotate()

    # ---- compaction -----------------------------------------------------------------------
    def compact(self, *, drop_before: datetime | None = None) -> dict[str, int]:
        """Rewrite sealed segments without duplicate ids, corrupt lines and (optionally) records older
        than ``drop_before``; empty segments are deleted. Each segment is replaced atomically, so a
        crash mid-way leaves at worst duplicates, which readers and the next compaction drop.
        Ids of dropped old records leave the idempotency index (a retry that old is accepted again).
        """
        cutoff = drop_before.isoformat().replace("+00:00", "Z") if drop_before is not None else None
        stats = {
            "segments": 0,
            "kept": 0,
            "dropped_duplicates": 0,
            "dropped_corrupt": 0,
            "dropped_old": 0,
            "segments_deleted": 0,
        }
        with self._lock:
            seen: set[str] = set()
            for _, path in list_segments(self.directory):
                if path == self._active_path:
                    # the active segment is not rewritten, but its ids count as seen
                    break
                stats["segments"] += 1
                recs, bad, _ = scan_segment(path)
                stats["dropped_corrupt"] += bad
                keep: list[dict[str, Any]] = []
                for rec in recs:
                    key = record_key(rec)
                    if key in seen:
                        stats["dropped_duplicates"] += 1
                        continue
                    seen.add(key)
                    if cutoff is not None and str(rec.get("ts", "")) < cutoff:
                        stats["dropped_old"] += 1
                        self._ids.discard(key)
                        continue
                    keep.append(rec)
                stats["kept"] += len(keep)
                if len(keep) == len(recs) and not bad:
                    continue
                if not keep:
                    path.unlink()
                    self._ids_path(path).unlink(missing_ok=True)
                    stats["segments_deleted"] += 1
                    continue
                _atomic_write(path, b"".join(encode_record(r) for r in keep), fsync=self.fsync)
                self._write_ids(path, [record_key(r) for r in keep])
            if self.fsync:
                _fsync_dir(self.directory)
        return stats

    # ---- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            if not self._fh.closed:
                self._fh.close()
            if not self._lock_fh.closed:
                fcntl.flock(self._lock_fh.fileno(), fcntl.LOCK_UN)
                self._lock_fh.close()

    def __enter__(self) -> FeedbackLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_records(directory: str | os.PathLike[str], *, dedupe: bool = True) -> Iterator[dict[str, Any]]:
    """Every valid record in log order (oldest segment first). Safe while a writer appends: a torn
    tail is simply not yielded. ``dedupe`` keeps the first record of each id."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FeedbackLogError(f"{directory}: feedback log directory not found")
    seen: set[str] = set()
    for _, path in list_segments(directory):
        records, _, _ = scan_segment(path)
        for rec in records:
            if dedupe:
                key = record_key(rec)
                if key in seen:
                    continue
                seen.add(key)
            yield rec
