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

Faults: a write, flush or fsync that fails (EIO, ENOSPC, ...) acknowledges nothing of its batch; the
log truncates the active segment back to its last good offset and refuses appends
(:class:`FeedbackLogUnavailable`, a 503 with Retry-After for a client) until a repair (truncate +
fsync probe) succeeds, so nothing is ever appended after partial bytes. ``healthy`` / ``health()``
say which state it is in.

Bounded memory: the idempotency index keeps the ids of the active segment and of segments sealed
less than ``id_retention_s`` ago (a retry older than that is stored again). :meth:`FeedbackLog.maintain`
(run by a background thread every ``maintenance_interval_s``, or called directly with a simulated
clock) seals the active segment once it is ``max_segment_age_s`` old, expires ids past the window,
compacts each newly sealed segment once (corrupt lines, duplicates within it) and, when
``data_retention_s`` is set, deletes whole segments sealed longer ago than that.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from smartreco.errors import SmartRecoError
from smartreco.feedback.records import FEEDBACK, IMPRESSION, make_record, record_key

log = logging.getLogger(__name__)

SEGMENT_RE = re.compile(r"^segment-(\d{12})\.log$")
DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
DEFAULT_SEGMENT_AGE_S = 3600.0  # seal the active segment at least hourly, so its ids can expire
DEFAULT_ID_RETENTION_S = 24 * 3600.0  # idempotency window: retries come within minutes, not days
DEFAULT_MAINTENANCE_INTERVAL_S = 60.0
DEFAULT_RETRY_AFTER_S = 1.0  # how long an unhealthy log waits before it tries a repair again


class FeedbackLogError(SmartRecoError):
    """The log directory cannot be used (locked by another writer, unreadable, ...)."""


class FeedbackLogUnavailable(FeedbackLogError):
    """A write failed (or failed earlier and is not repaired yet): nothing was acknowledged.

    A caller maps it to HTTP 503 / UNAVAILABLE with ``Retry-After: retry_after_s``; the client's retry
    with the same id is safe (idempotent)."""

    def __init__(self, message: str, retry_after_s: float = DEFAULT_RETRY_AFTER_S) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class SegmentFile:
    """The active segment, opened for appending, unbuffered.

    Every disk operation the durability contract depends on goes through these few methods (a test
    wraps them to inject EIO/ENOSPC). Unbuffered on purpose: after a failed write no bytes wait in a
    user-space buffer to be flushed later, behind the log's back.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = open(path, "ab", buffering=0)  # noqa: SIM115 - closed in close()

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:  # a raw write may be short
            n = self._fh.write(view)
            if not n:
                raise OSError(f"{self.path}: short write")
            view = view[n:]

    def flush(self) -> None:
        self._fh.flush()

    def fsync(self) -> None:
        os.fsync(self._fh.fileno())

    def truncate(self, size: int) -> None:
        os.ftruncate(self._fh.fileno(), size)

    def size(self) -> int:
        return os.fstat(self._fh.fileno()).st_size

    @property
    def closed(self) -> bool:
        return self._fh.closed

    def close(self) -> None:
        self._fh.close()


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
    The idempotency index (the ids of the retention window) is rebuilt on open from the sealed
    segments' ``.ids`` files plus a scan of the active segment, so it survives restarts and crashes.
    ``clock`` (seconds, like :func:`time.time`) drives segment age, retention and repair back-off;
    ``opener`` makes the active segment's file object (tests inject faults through it).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        max_segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        fsync: bool = True,
        max_segment_age_s: float | None = DEFAULT_SEGMENT_AGE_S,
        id_retention_s: float = DEFAULT_ID_RETENTION_S,
        data_retention_s: float | None = None,
        maintenance_interval_s: float | None = DEFAULT_MAINTENANCE_INTERVAL_S,
        retry_after_s: float = DEFAULT_RETRY_AFTER_S,
        clock: Callable[[], float] = time.time,
        opener: Callable[[Path], SegmentFile] = SegmentFile,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_segment_bytes = int(max_segment_bytes)
        self.fsync = fsync
        self.max_segment_age_s = max_segment_age_s
        self.id_retention_s = float(id_retention_s)
        if data_retention_s is not None and data_retention_s < self.id_retention_s:
            raise FeedbackLogError("data_retention_s must not be shorter than id_retention_s")
        self.data_retention_s = data_retention_s
        self.retry_after_s = float(retry_after_s)
        self._clock = clock
        self._opener = opener
        self._error: str | None = None  # why the log is unhealthy; None when healthy
        self._failed_at = 0.0
        self._failures = 0
        self._lock = threading.Lock()
        self._maint_lock = threading.Lock()  # one compaction at a time (scheduled or explicit)
        self._lock_fh = open(self.directory / "LOCK", "a+b")  # noqa: SIM115 - held for the log's lifetime
        try:
            fcntl.flock(self._lock_fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_fh.close()
            raise FeedbackLogError(
                f"{self.directory}: feedback log is open for writing by another process"
            ) from None
        # idempotency index: key -> segment number of its latest copy; per-segment key lists let a
        # whole segment's ids expire at once
        self._ids: dict[str, int] = {}
        self._segment_keys: dict[int, list[str]] = {}
        self._sealed_at: dict[int, float] = {}  # sealed segments whose ids are still indexed
        self._uncompacted: set[int] = set()  # sealed segments the maintenance has not compacted yet
        self._sealed_times: dict[int, float] = {}  # every sealed segment on disk (data retention)
        self.recovery = self._recover()
        self._fh = self._opener(self._active_path)
        self._size = self._fh.size()
        self._active_opened_at = self._clock()
        self._stop = threading.Event()
        self._maint_thread: threading.Thread | None = None
        if maintenance_interval_s:
            self._maint_thread = threading.Thread(
                target=self._maintenance_loop,
                args=(float(maintenance_interval_s),),
                name=f"feedback-log-maintenance:{self.directory.name}",
                daemon=True,
            )
            self._maint_thread.start()

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
        horizon = self._clock() - self.id_retention_s
        for no, path in segments[:-1]:
            cache = self._load_ids(path)
            if cache is None:
                recs, bad, _ = scan_segment(path)
                ids = [record_key(r) for r in recs]
                corrupt += bad
                sealed_at = path.stat().st_mtime  # best estimate for a segment without its cache
                self._write_ids(path, ids, sealed_at=sealed_at, compacted=False)
                compacted = False
            else:
                ids, sealed_at, compacted = cache
            total += len(ids)
            self._sealed_times[no] = sealed_at
            if not compacted:
                self._uncompacted.add(no)
            if sealed_at > horizon:  # still inside the idempotency window
                self._index(no, ids)
                self._sealed_at[no] = sealed_at
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
        self._index(self._active_no, [record_key(r) for r in recs])
        total += len(recs)
        return ScanStats(total, bad + corrupt, truncated)

    def _index(self, segment: int, keys: list[str]) -> None:
        self._ids.update(dict.fromkeys(keys, segment))
        self._segment_keys.setdefault(segment, []).extend(keys)

    def _expire(self, segment: int) -> int:
        """Drop a segment's ids from the idempotency index (those whose latest copy is in it)."""
        n = 0
        for key in self._segment_keys.pop(segment, ()):
            if self._ids.get(key) == segment:
                del self._ids[key]
                n += 1
        self._sealed_at.pop(segment, None)
        return n

    @staticmethod
    def _ids_path(segment: Path) -> Path:
        return segment.with_suffix(".ids")

    def _load_ids(self, segment: Path) -> tuple[list[str], float, bool] | None:
        """(ids, sealed_at, compacted) from a sealed segment's cache, or None when it must be rebuilt."""
        path = self._ids_path(segment)
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_bytes())
            if data.get("segment_bytes") != segment.stat().st_size:
                return None  # the segment changed after the cache was written (e.g. compaction crash)
            sealed_at = data.get("sealed_at")
            if not isinstance(sealed_at, int | float):
                sealed_at = path.stat().st_mtime  # a cache written before sealed_at was recorded
            return list(data["ids"]), float(sealed_at), bool(data.get("compacted", False))
        except (ValueError, KeyError, TypeError):
            return None

    def _write_ids(
        self, segment: Path, ids: list[str], *, sealed_at: float | None = None, compacted: bool = False
    ) -> None:
        body = json.dumps(
            {
                "segment_bytes": segment.stat().st_size,
                "sealed_at": self._clock() if sealed_at is None else sealed_at,
                "compacted": compacted,
                "ids": ids,
            }
        ).encode()
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
        """Group commit: all new records are written, then one fsync acknowledges them together.

        Raises :class:`FeedbackLogUnavailable` (nothing acknowledged) when the write, flush or fsync
        fails or the log is still unhealthy from an earlier failure."""
        records = [make_record(kind, p) for p in payloads]
        results: list[AppendResult] = []
        with self._lock:
            self._ensure_writable()
            batch: list[bytes] = []
            fresh: dict[str, None] = {}
            for rec in records:
                key = record_key(rec)
                dup = key in self._ids or key in fresh
                results.append(AppendResult(rec["id"], rec["kind"], dup))
                if not dup:
                    fresh[key] = None
                    batch.append(encode_record(rec))
            if batch:
                data = b"".join(batch)
                try:
                    self._fh.write(data)
                    self._fh.flush()
                    if self.fsync:
                        self._fh.fsync()
                except OSError as exc:
                    self._fail(exc)  # raises: nothing of this batch is acknowledged
                self._size += len(data)
                self._index(self._active_no, list(fresh))  # only after the data is durable
                if self._size >= self.max_segment_bytes:
                    self._try_rotate()
        return results

    # ---- faults ---------------------------------------------------------------------------
    @property
    def healthy(self) -> bool:
        """False after a failed write until a repair succeeded (appends are refused meanwhile)."""
        return self._error is None and not self._fh.closed

    def health(self) -> dict[str, Any]:
        """What a readiness check reports: writable or not, why, and the index size."""
        return {
            "healthy": self.healthy,
            "error": self._error if self._error is not None else ("closed" if self._fh.closed else None),
            "failures": self._failures,
            "retry_after_s": self._retry_after() if self._error is not None else 0.0,
            "active_segment": self._active_path.name,
            "indexed_ids": len(self._ids),
        }

    def _retry_after(self) -> float:
        return max(0.0, self._failed_at + self.retry_after_s - self._clock())

    def _ensure_writable(self) -> None:
        if self._fh.closed and self._error is None:
            raise FeedbackLogError(f"{self.directory}: feedback log is closed")
        if self._error is None:
            return
        wait = self._retry_after()
        if wait > 0:
            raise FeedbackLogUnavailable(
                f"{self.directory}: feedback log unavailable after a failed write ({self._error}); "
                f"appends refused until repaired",
                retry_after_s=max(wait, 0.1),
            )
        self._repair()

    def _fail(self, exc: OSError) -> None:
        """A write/flush/fsync failed: cut the partial bytes off now if the disk lets us, and refuse
        appends until :meth:`_repair` has verified the segment is back at its last good offset."""
        self._error = f"{type(exc).__name__}: {exc}"
        self._failed_at = self._clock()
        self._failures += 1
        log.error("%s: append failed, nothing acknowledged: %s", self._active_path, exc)
        try:
            self._fh.truncate(self._size)
        except OSError as cut:
            log.error("%s: cannot truncate back to %d: %s", self._active_path, self._size, cut)
        raise FeedbackLogUnavailable(
            f"{self.directory}: feedback log write failed, nothing acknowledged ({self._error})",
            retry_after_s=self.retry_after_s,
        ) from exc

    def _repair(self) -> None:
        """Reopen the active segment, truncate it to the last good offset and prove with an fsync that
        the disk takes writes again; only then is the log healthy. Raises FeedbackLogUnavailable."""
        try:
            if not self._fh.closed:
                self._fh.close()
        except OSError:
            pass  # the old descriptor is abandoned either way
        try:
            fh = self._opener(self._active_path)
            try:
                fh.truncate(self._size)
                fh.fsync()
                if fh.size() != self._size:
                    raise OSError(f"size {fh.size()} after truncating to {self._size}")
            except BaseException:
                fh.close()
                raise
        except OSError as exc:
            self._error = f"{type(exc).__name__}: {exc}"
            self._failed_at = self._clock()
            raise FeedbackLogUnavailable(
                f"{self.directory}: feedback log repair failed ({self._error}); appends refused",
                retry_after_s=self.retry_after_s,
            ) from exc
        self._fh = fh
        log.warning("%s: repaired after a failed write (back at offset %d)", self._active_path, self._size)
        self._error = None

    def _try_rotate(self) -> None:
        """Rotate after an acknowledged write: a failure here loses nothing (the records are durable in
        the current segment), so it is logged and retried on a later append or maintenance run."""
        try:
            self._rotate()
        except OSError as exc:
            log.warning("%s: rotation failed, still appending to it: %s", self._active_path, exc)

    def _rotate(self) -> None:
        """Seal the active segment (write its id cache) and start the next one. The new segment is
        opened before the old one is closed, so a failure leaves the log appending where it was."""
        now = self._clock()
        keys = self._segment_keys.get(self._active_no, [])
        self._write_ids(self._active_path, keys, sealed_at=now, compacted=False)
        new_no = self._active_no + 1
        new_path = self.directory / _segment_name(new_no)
        new_fh = self._opener(new_path)
        try:
            if self.fsync:
                _fsync_dir(self.directory)
        except OSError:
            new_fh.close()
            raise
        old = self._fh
        self._sealed_at[self._active_no] = now
        self._sealed_times[self._active_no] = now
        self._uncompacted.add(self._active_no)
        self._active_no, self._active_path, self._fh = new_no, new_path, new_fh
        self._size = new_fh.size()
        self._active_opened_at = now
        try:
            old.close()
        except OSError as exc:  # everything in it was fsync'd already
            log.warning("closing a sealed segment failed: %s", exc)

    def rotate(self) -> None:
        with self._lock:
            if self._size:
                self._rotate()

    # ---- scheduled maintenance ------------------------------------------------------------
    def maintain(self, now: float | None = None) -> dict[str, int]:
        """Age-based rotation, id expiry, one-time compaction of newly sealed segments and (when
        ``data_retention_s`` is set) deletion of old segments. Cheap when nothing is due; the
        background thread calls it every ``maintenance_interval_s``."""
        now = self._clock() if now is None else now
        stats = {"rotated": 0, "expired_ids": 0, "compacted_segments": 0, "deleted_segments": 0}
        with self._lock:
            if self._fh.closed:
                return stats
            if (
                self.healthy
                and self._size
                and self.max_segment_age_s is not None
                and now - self._active_opened_at >= self.max_segment_age_s
            ):
                try:
                    self._rotate()
                    stats["rotated"] = 1
                except OSError as exc:
                    log.warning("%s: scheduled rotation failed: %s", self._active_path, exc)
            horizon = now - self.id_retention_s
            for seg, sealed_at in list(self._sealed_at.items()):
                if sealed_at <= horizon:
                    stats["expired_ids"] += self._expire(seg)
            todo = sorted(self._uncompacted)
        with self._maint_lock:  # sealed segments are never appended to: no need for the write lock
            for seg in todo:
                path = self.directory / _segment_name(seg)
                try:
                    if path.exists():
                        self._compact_sealed(path)
                        stats["compacted_segments"] += 1
                    self._uncompacted.discard(seg)
                except OSError as exc:
                    log.warning("%s: compaction failed, retried later: %s", path, exc)
            if self.data_retention_s is not None:
                stats["deleted_segments"] = self._delete_old_segments(now - self.data_retention_s)
        return stats

    def _compact_sealed(self, path: Path) -> None:
        """Rewrite one sealed segment without corrupt lines and duplicates within it; mark it compacted."""
        cache = self._load_ids(path)
        sealed_at = cache[1] if cache is not None else path.stat().st_mtime
        recs, bad, _ = scan_segment(path)
        keep: list[dict[str, Any]] = []
        seen: set[str] = set()
        for rec in recs:
            key = record_key(rec)
            if key not in seen:
                seen.add(key)
                keep.append(rec)
        if bad or len(keep) != len(recs) or path.stat().st_size != sum(len(encode_record(r)) for r in recs):
            _atomic_write(path, b"".join(encode_record(r) for r in keep), fsync=self.fsync)
        self._write_ids(path, [record_key(r) for r in keep], sealed_at=sealed_at, compacted=True)

    def _delete_old_segments(self, cutoff: float) -> int:
        deleted = 0
        for no, sealed_at in sorted(self._sealed_times.items()):
            if sealed_at > cutoff:
                continue
            path = self.directory / _segment_name(no)
            with self._lock:
                self._expire(no)
                self._sealed_times.pop(no, None)
            path.unlink(missing_ok=True)
            self._ids_path(path).unlink(missing_ok=True)
            deleted += 1
        if deleted and self.fsync:
            _fsync_dir(self.directory)
        return deleted

    def _maintenance_loop(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                self.maintain()
            except Exception:  # noqa: BLE001 - the thread must survive a bad run; it is logged
                log.exception("%s: feedback log maintenance failed", self.directory)

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
        with self._maint_lock, self._lock:
            seen: set[str] = set()
            for no, path in list_segments(self.directory):
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
                        self._ids.pop(key, None)
                        continue
                    keep.append(rec)
                stats["kept"] += len(keep)
                if len(keep) == len(recs) and not bad:
                    continue
                if not keep:
                    self._sealed_times.pop(no, None)
                    self._uncompacted.discard(no)
                    path.unlink()
                    self._ids_path(path).unlink(missing_ok=True)
                    stats["segments_deleted"] += 1
                    continue
                cache = self._load_ids(path)
                sealed_at = cache[1] if cache is not None else path.stat().st_mtime
                _atomic_write(path, b"".join(encode_record(r) for r in keep), fsync=self.fsync)
                self._write_ids(path, [record_key(r) for r in keep], sealed_at=sealed_at, compacted=True)
                self._uncompacted.discard(no)
            if self.fsync:
                _fsync_dir(self.directory)
        return stats

    # ---- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        self._stop.set()
        if self._maint_thread is not None and self._maint_thread is not threading.current_thread():
            self._maint_thread.join()
        with self._lock:
            if not self._fh.closed:
                try:
                    self._fh.close()
                except OSError as exc:  # everything acknowledged was fsync'd already
                    log.warning("%s: close failed: %s", self._active_path, exc)
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
