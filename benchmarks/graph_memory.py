"""Memory of every process of a running graph (issue #20): the executor, the event service and each node
process (with its gunicorn workers and gRPC server), and Redis ``used_memory`` when ``--state redis://``
puts the shared state there, after N predictions with distinct 128-character request ids (``meta.puid``)
and N/10 feedbacks (each about an answer just served, with its own id).

    .venv-serving/bin/python benchmarks/graph_memory.py                       # 100k predictions, 10k feedbacks
    .venv-serving/bin/python benchmarks/graph_memory.py --predictions 5000 --fused
    .venv-serving/bin/python benchmarks/graph_memory.py --redis --out benchmarks/results/graph_memory_redis

The graph is the real local one (``python -m inference_graph.executor``, node processes, the event service it
starts, the default local cache and SQLite node state, or ``--redis``) over the tests' small fake bundle: what
is measured is the state the serving path keeps per request, not a model. Memory per process tree: anonymous
PSS (``/proc/PID/smaps_rollup`` Pss_Anon + Pss_Shmem, summed over the tree: its physical heap, a copy-on-write
break counted once, other processes' library pages left out), with USS, PSS and RSS alongside, after a warm-up
(baseline) and at every tenth of the run, so the table shows growth and its trend. A forked gunicorn worker or
gRPC server that runs a full garbage collection touches every object it inherited and un-shares its parent's
heap at once (a one-time step of up to the parent's heap, ~29 MiB per node measured); inference_graph/base.py
freezes the inherited objects in every forked child, which removed those steps.

Simulated clock (the default; ``--real-clock`` turns it off): every graph process runs under libfaketime
(``LD_PRELOAD``: the executor hands its environment to the event service and the nodes, gunicorn workers and
gRPC servers inherit it through fork, redis-server with ``--redis`` gets it too), its wall clock offset read
from a file this benchmark rewrites as the run goes: ``--day-every`` predictions (10,000) advance it by one
day, so 100,000 predictions span ten simulated days and the default retention (served answers and event-log
ids 24 h, effect keys 7 d, Redis TTLs) expires during the run, driven by what the product schedules: the
event service's log maintenance thread (every 60 s), the nodes' amortised ``GraphState.prune`` on the answer
and feedback paths, Redis key expiry. The monotonic clock stays real (``FAKETIME_DONT_FAKE_MONOTONIC=1``:
timeouts, asyncio, gunicorn's heartbeat) and file times are not faked (``NO_FAKE_STAT=1``). Every tenth
records the evidence that the clock reached the processes and that retention expired: the graph processes
that map libfaketime, the node state's served / effect rows and their newest timestamp (the nodes' clock),
the event service's indexed ids (``/api/v1/stats``) and its newest sealed segment's time, Redis' ``TIME`` and keys.
With ``--redis`` the event log is the Redis stream, which on a cluster the archive CronJob
(manifests/base/events/archive-cronjob.yaml) trims: this benchmark replays it on the simulated clock, running
its command (``python -m smartreco events archive``, the default retention of smartreco/settings.py: 24 h, at
most 20,000 records) under libfaketime at each slot of the CronJob's schedule (read from the manifest; a slot
passed while a run is still going is skipped, as ``concurrencyPolicy: Forbid`` does), into a parquet archive
in the work folder. The evidence shows the stream's entries, its oldest record's age and ``MEMORY USAGE``
apart from the node state's keys, the archive runs, and archived + stream records against the records the
run appended (nothing acknowledged lost).

Prerequisite for the simulated clock: a libfaketime with the fix for wolfcw/libfaketime#426. Debian 12's
package (0.9.10) breaks Python >= 3.11 under ``FAKETIME_DONT_FAKE_MONOTONIC=1``: ``time.sleep`` calls
``clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)``, which 0.9.10 shifts as if it were the wall clock, so it
fails with EINVAL (the executor dies at start). Build upstream's (seconds; gcc, make)::

    git clone https://github.com/wolfcw/libfaketime /tmp/libfaketime && make -C /tmp/libfaketime/src libfaketime.so.1
    .venv-serving/bin/python benchmarks/graph_memory.py --faketime-lib /tmp/libfaketime/src/libfaketime.so.1

(or copy it to /usr/local/lib/faketime/libfaketime.so.1, looked up by default). The benchmark first probes
the library in a child Python (``time.sleep`` works, the offset shows) and stops with this hint otherwise.
Results: benchmarks/results/graph_memory.{json,md} (``--redis``: graph_memory_redis.{json,md}).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "integration")]

import aiohttp  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
ARCHIVE_CRONJOB = ROOT / "manifests" / "base" / "events" / "archive-cronjob.yaml"
MIB = 1024 * 1024
LIMIT_MB = 50.0
DAY_S = 86400
FAKETIME_CANDIDATES = (
    "/usr/local/lib/faketime/libfaketime.so.1",
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
)
IGNORE_SYMBOLS = "__ftime,clock_gettime64,__clock_gettime64,timer_settime@GLIBC_2.2,timer_gettime@GLIBC_2.2"
FAKETIME_HINT = (
    "a libfaketime with the fix for wolfcw/libfaketime#426 is needed (Debian 12's 0.9.10 makes Python's "
    "time.sleep fail with EINVAL): git clone https://github.com/wolfcw/libfaketime /tmp/libfaketime && "
    "make -C /tmp/libfaketime/src libfaketime.so.1, then --faketime-lib /tmp/libfaketime/src/libfaketime.so.1"
)


def request_id(i: int) -> str:
    return f"bench-{i:012d}-".ljust(128, "x")  # distinct 128-character ids (the puid limit)


# ------------------------------------------------------------------------------------------ clock
class FakeClock:
    """The simulated wall clock of every graph process: libfaketime's offset, in a file it re-reads every second.

    ``at(n)`` moves it to ``n`` predictions' worth of simulated time (``day_every`` predictions a day); it only
    moves forward, so no process sees its wall clock go back."""

    def __init__(self, path: Path, lib: str, day_every: int) -> None:
        self.path, self.lib, self.day_every = path, lib, int(day_every)
        self.offset_s = -1
        self._set(0)

    def env(self) -> dict[str, str]:
        return {
            "LD_PRELOAD": self.lib,
            "FAKETIME_TIMESTAMP_FILE": str(self.path),
            "FAKETIME_CACHE_DURATION": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            "NO_FAKE_STAT": "1",
            # redis-server (jemalloc) deadlocks at start when libfaketime allocates during its init: in the
            # lookup of symbols this glibc lacks (wolfcw/libfaketime#130; FAKETIME_DEBUG_DLSYM=1 lists them) and
            # in the setenv of its shared-memory segment (not needed: every process reads the same file)
            "FAKETIME_IGNORE_SYMBOLS": IGNORE_SYMBOLS,
            "FAKETIME_DISABLE_SHM": "1",
        }

    def _set(self, offset_s: int) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(f"+{offset_s}\n")
        os.replace(tmp, self.path)  # a reader sees the old or the new line, never half of one
        self.offset_s = offset_s

    def at(self, predictions: int) -> None:
        offset = predictions * DAY_S // self.day_every
        if offset > self.offset_s:
            self._set(offset)

    def now(self) -> float:
        """What the graph processes' wall clock says now (within the 1 s they cache the file)."""
        return time.time() + self.offset_s


def probe_faketime(lib: str, work: Path) -> str | None:
    """None when ``lib`` fakes a child Python's wall clock and leaves its sleeps working; else why not."""
    if not Path(lib).is_file():
        return f"{lib}: not found"
    clock = FakeClock(work / "probe-faketime.rc", lib, 1)
    clock._set(DAY_S)
    code = "import time; t = time.time(); time.sleep(0.01); print(t)"
    try:
        out = subprocess.run(
            [sys.executable, "-c", code], env={**os.environ, **clock.env()}, capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        return f"{lib}: a child Python hung"
    if out.returncode != 0:
        return f"{lib}: a child Python failed: {out.stderr.strip().splitlines()[-1:]}"
    seen = float(out.stdout) - time.time()
    if abs(seen - DAY_S) > 60:
        return f"{lib}: the child's clock is off by {seen:.0f} s, not one day"
    return None


def faketime_lib(asked: str | None, work: Path) -> str:
    """The libfaketime to use: the one asked for, or the first candidate that passes the probe."""
    errors = []
    for lib in [asked] if asked else FAKETIME_CANDIDATES:
        why = probe_faketime(lib, work)
        if why is None:
            return str(Path(lib).resolve())
        errors.append(why)
    raise SystemExit("simulated clock unavailable: " + "; ".join(errors) + ". " + FAKETIME_HINT)


# ------------------------------------------------------------------------------------------ /proc
def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def _tree(pid: int, kids: dict[int, list[int]]) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def _mem_kib(pid: int) -> dict[str, int]:
    """KiB of one process (zeros when it is gone): ``anon`` = Pss_Anon + Pss_Shmem, its share of the
    anonymous memory it maps. Summed over a process tree that is the tree's physical heap exactly: anonymous
    pages are shared only through fork inside the tree, so a copy-on-write break counts once (USS counts it
    twice: the child's copy and the parent's now-private original; RSS not at all), and library pages that
    other processes on the machine map are left out (they move PSS, not anonymous PSS)."""
    fields = {"Pss_Anon:": 0, "Pss_Shmem:": 0, "Private_Clean:": 0, "Private_Dirty:": 0, "Pss:": 0, "Rss:": 0}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key = line.split(None, 1)[0] if line else ""
            if key in fields:
                fields[key] = int(line.split()[1])
    except OSError:
        pass
    return {
        "anon": fields["Pss_Anon:"] + fields["Pss_Shmem:"],
        "uss": fields["Private_Clean:"] + fields["Private_Dirty:"],
        "pss": fields["Pss:"],
        "rss": fields["Rss:"],
    }


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def process_groups(executor_pid: int, nodes: dict[str, int]) -> dict[str, list[int]]:
    """The graph's process trees: the executor, the event service, each node (with its forked children)."""
    kids = _children()
    groups: dict[str, list[int]] = {name: _tree(pid, kids) for name, pid in nodes.items()}
    in_nodes = {p for pids in groups.values() for p in pids}
    events = [
        p
        for p in _tree(executor_pid, kids)
        if p != executor_pid and p not in in_nodes and "smartreco.events" in _cmdline(p)
    ]
    if events:
        groups["event-service"] = _tree(events[0], kids)
    groups["executor"] = [executor_pid]
    return groups


def snapshot(groups: dict[str, list[int]]) -> dict[str, dict[str, float]]:
    """Anonymous PSS / USS / PSS / RSS MiB per graph process tree."""
    out = {}
    for name, pids in groups.items():
        total = dict.fromkeys(("anon", "uss", "pss", "rss"), 0)
        for p in pids:
            for key, kib in _mem_kib(p).items():
                total[key] += kib
        out[name] = {f"{k}_mib": round(v / 1024, 1) for k, v in total.items()} | {"processes": len(pids)}
    return out


def faketime_mapped(groups: dict[str, list[int]], lib: str) -> dict[str, str]:
    """Per process tree, how many of its processes map libfaketime ("4/4"): the clock reaches every one."""
    out = {}
    for name, pids in groups.items():
        hits = 0
        for p in pids:
            with contextlib.suppress(OSError):  # a worker that exited since the listing
                hits += lib in Path(f"/proc/{p}/maps").read_text()
        out[name] = f"{hits}/{len(pids)}"
    return out


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as r:  # noqa: S310 - loopback URL of our own event service
        return json.loads(r.read())


def retention_evidence(work: Path, events_url: str, state: str | None, clock: FakeClock | None) -> dict:
    """What retention holds now, and whose clock wrote it: node state rows (local SQLite or Redis keys), the
    event service's indexed ids and its newest sealed segment. ``*_vs_clock_s``: a time a process wrote (or
    Redis reports) minus the simulated clock; near 0 (minus the age of the newest write) when the process
    runs on the simulated clock, about minus the offset when it does not."""
    now = clock.now() if clock else time.time()
    out: dict = {"simulated_days": round(clock.offset_s / DAY_S, 2) if clock else 0.0}
    if state is None:
        con = sqlite3.connect(work / "graph-state" / "state.sqlite", timeout=30)
        try:
            n, newest, oldest = con.execute("SELECT COUNT(*), MAX(ts), MIN(ts) FROM served").fetchone()
            fx, fx_oldest = con.execute("SELECT COUNT(*), MIN(ts) FROM effects").fetchone()
        finally:
            con.close()
        out |= {
            "served_rows": n,
            "served_newest_vs_clock_s": round(newest - now) if newest else None,
            "served_oldest_age_h": round((now - oldest) / 3600, 1) if oldest else None,
            "effect_rows": fx,
            "effect_oldest_age_d": round((now - fx_oldest) / DAY_S, 2) if fx_oldest else None,
        }
    else:
        import redis

        r = redis.Redis.from_url(state)
        sec, usec = r.time()
        served = sum(1 for _ in r.scan_iter(match="smartreco:graph:served:*", count=5000))
        effects = sum(1 for _ in r.scan_iter(match="smartreco:graph:fx:*", count=5000))
        out |= {
            "redis_clock_vs_clock_s": round(sec + usec / 1e6 - now),
            "redis_keys": r.dbsize(),
            "served_keys": served,
            "effect_keys": effects,
            "event_stream_entries": r.xlen("smartreco:events"),
            "event_ids": r.hlen("smartreco:events:ids"),
            # what the event log holds in Redis (MEMORY USAGE samples a stream's / hash's entries: an estimate)
            "event_stream_mib": round((r.memory_usage("smartreco:events") or 0) / MIB, 1),
            "event_ids_mib": round((r.memory_usage("smartreco:events:ids") or 0) / MIB, 1),
        }
        oldest = r.xrange("smartreco:events", count=1)
        redis_ms = sec * 1000 + usec // 1000
        out["stream_oldest_age_h"] = round((redis_ms - int(oldest[0][0].split(b"-")[0])) / 3.6e6, 1) if oldest else None
        files, rows = archived_rows(work / "events-archive")
        out |= {"archive_files": files, "archived_records": rows,
                "archived_plus_stream": rows + out["event_stream_entries"]}  # fmt: skip
        r.close()
    out["event_log_ids"] = _get_json(events_url.rstrip("/") + "/api/v1/stats").get("records")
    sealed = []
    for ids in sorted((work / "feedback").glob("segment-*.ids")):
        with contextlib.suppress(OSError, ValueError, KeyError):  # replaced while read (compaction)
            sealed.append(json.loads(ids.read_text())["sealed_at"])
    if sealed:
        out |= {"event_segments_sealed": len(sealed), "event_newest_sealed_vs_clock_s": round(max(sealed) - now)}
    return out


def redis_used_mib(url: str | None) -> float | None:
    if not url:
        return None
    import redis

    return round(redis.Redis.from_url(url).info("memory")["used_memory"] / MIB, 2)


# ------------------------------------------------------------------------------------------ archive
def cronjob_schedule(path: Path = ARCHIVE_CRONJOB) -> tuple[str, int]:
    """The archive CronJob's schedule and its minute past each hour; only ``M * * * *`` (hourly) is replayed."""
    text = re.search(r"^\s*schedule:\s*\"([^\"]+)\"", path.read_text(), re.M)
    if text is None:
        raise SystemExit(f"{path}: no schedule")
    fields = text.group(1).split()
    if len(fields) != 5 or fields[1:] != ["*"] * 4 or not fields[0].isdigit():
        raise SystemExit(f"{path}: schedule {text.group(1)!r} is not hourly (M * * * *), which this benchmark replays")
    return text.group(1), int(fields[0])


class ArchiveCron(threading.Thread):
    """The archive CronJob on the simulated clock: at every ``minute`` past each simulated hour it runs the
    CronJob's command (its default retention) as a child under libfaketime (the environment carries it) and
    waits for it; slots that pass meanwhile are skipped (``concurrencyPolicy: Forbid``)."""

    LINE = re.compile(r"archived (\d+) record\(s\) -> .*; trimmed (\d+); stream holds (\d+)")

    def __init__(self, clock: FakeClock | None, state: str, directory: Path, schedule: tuple[str, int]) -> None:
        super().__init__(name="archive-cron", daemon=True)
        self.clock, self.state, self.directory = clock, state, directory
        self.schedule, self.minute = schedule
        self.stop_event = threading.Event()
        self.runs = self.skipped = self.failures = self.archived = 0
        self.last: dict = {}
        self._due = self._next_slot(self._now())

    def _now(self) -> float:
        return self.clock.now() if self.clock else time.time()

    def _next_slot(self, after: float) -> float:
        hour = after - after % 3600
        slot = hour + 60 * self.minute
        return slot if slot > after else slot + 3600

    def run(self) -> None:
        env = {**os.environ, "SMARTRECO_EVENTS_ARCHIVE": str(self.directory)}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        for name in ("SMARTRECO_EVENTS_RETENTION_S", "SMARTRECO_EVENTS_MAX_ENTRIES"):
            env.pop(name, None)  # the defaults, as on the cluster
        while not self.stop_event.wait(0.2):
            if self._now() < self._due:
                continue
            cmd = [sys.executable, "-m", "smartreco", "events", "archive", "--state", self.state]
            out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
            self.runs += 1
            m = self.LINE.search(out.stdout)
            if out.returncode != 0 or m is None:
                self.failures += 1
                self.last = {"rc": out.returncode, "stderr": out.stderr.strip()[-500:]}
            else:
                self.archived += int(m.group(1))
                self.last = {"archived": int(m.group(1)), "trimmed": int(m.group(2)), "stream": int(m.group(3))}
            now = self._now()
            self.skipped += int((now - self._due) // 3600)  # slots passed while it ran
            self._due = self._next_slot(now)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=620)

    def summary(self) -> dict:
        return {"schedule": self.schedule, "runs": self.runs, "skipped_slots": self.skipped,
                "failures": self.failures, "archived_records": self.archived, "last": self.last}  # fmt: skip


def archived_rows(directory: Path) -> tuple[int, int]:
    """(files, records) of the parquet archive (its files' footers: no rows read)."""
    import pyarrow.parquet as pq

    from smartreco.feedback.stream_log import archived_files

    files = archived_files(directory)
    return len(files), sum(pq.read_metadata(path).num_rows for *_, path in files)


# ------------------------------------------------------------------------------------------- graph
def start_graph(work: Path, fused: bool, state: str | None) -> tuple[subprocess.Popen, dict]:
    import graph_fake_bundle as fake

    from inference_graph.executor.fusion import MODEL_URI_PARAMS

    bundle = fake.write(work / "bundle")
    overrides = {
        "*": dict.fromkeys(MODEL_URI_PARAMS, str(bundle)),
        "ab-router": {"store": str(work / "arms.sqlite"), "mode": "thompson"},
    }
    ready = work / "ready.json"
    cmd = [
        sys.executable,
        "-m",
        "inference_graph.executor",
        "--port",
        "0",
        "--grpc-port",
        "0",
        "--no-push",
        "--feedback-log",
        str(work / "feedback"),
        "--ready-file",
        str(ready),
        "--set",
        json.dumps(overrides),
        "--log-dir",
        str(work / "logs"),
        "--graph-state",
        str(work / "graph-state" / "state.sqlite"),
    ]
    if fused:
        cmd.append("--fused")
    if state:
        cmd += ["--state", state]
    env = {**os.environ, **fake.node_env()}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    stderr = open(work / "executor.stderr", "ab")  # noqa: SIM115 - the child holds it for its lifetime
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    deadline = time.monotonic() + 300
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"executor did not start: {(work / 'executor.stderr').read_text()[-2000:]}")
        time.sleep(0.2)
    time.sleep(0.2)
    return proc, json.loads(ready.read_text())


async def drive(
    url: str,
    start: int,
    count: int,
    feedback_every: int,
    concurrency: int,
    stats: dict,
    tick: Callable[[int], None] | None = None,
) -> None:
    """``count`` predictions (ids start..start+count) and a feedback after every ``feedback_every``-th;
    ``tick(n)`` after each prediction, ``n`` answered so far in this call (moves the simulated clock)."""
    ids = iter(range(start, start + count))
    answered = [0]
    headers = {"Content-Type": "application/json"}

    async def worker(session: aiohttp.ClientSession) -> None:
        for i in ids:
            user = str(i % 5000)
            body = {"jsonData": {"user_id": user, "num_recommendations": 10}, "meta": {"puid": request_id(i)}}
            async with session.post(url + "/api/v1.0/predictions", json=body, headers=headers) as r:
                answer = await r.json()
                stats[r.status] = stats.get(r.status, 0) + 1
            answered[0] += 1
            if tick is not None:
                tick(answered[0])
            if r.status != 200 or i % feedback_every:
                continue
            item = answer["jsonData"]["recommendations"][0]["item_id"]
            fb = {
                "request": {"jsonData": {"user_id": user}},
                "response": answer,
                "reward": 1.0,
                "truth": {"jsonData": {"item_id": item, "interaction_type": "click", "feedback_id": f"fb-{i}"}},
            }
            async with session.post(url + "/api/v1.0/feedback", json=fb, headers=headers) as r:
                await r.read()
                key = f"feedback {r.status}"
                stats[key] = stats.get(key, 0) + 1

    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))


REDIS_PROCESS = "redis-server"  # shown per process, counted through used_memory (its heap would count twice)
REDIS_NOTE = " (in the total; the redis-server row is that process's heap, shown, not added)"


def _total(snap: dict, key: str) -> float:
    return round(sum(v[key] for name, v in snap.items() if name != REDIS_PROCESS), 1)


def _clock_text(a: argparse.Namespace, clock: FakeClock | None) -> str:
    if clock is None:
        return "real (retention windows never expire during the run: every id of the run is still held)"
    return (
        f"simulated: libfaketime ({clock.lib}) in every graph process, +1 day every {a.day_every:,} "
        f"predictions ({clock.offset_s / DAY_S:.1f} days at the end), monotonic clock real"
    )


def _retention_text() -> str:
    from smartreco import settings

    return (
        f"older than {settings.EVENTS_RETENTION_S.default / 3600:g} h, at most "
        f"{settings.EVENTS_MAX_ENTRIES.default:,} records"
    )


def _archive_text(archive: dict | None) -> str:
    if not archive:
        return ""
    return (
        f" Event stream archive: the CronJob's command on its schedule `{archive['schedule']}` (simulated clock), "
        f"default retention ({archive['retention']}): {archive['runs']} runs, {archive['skipped_slots']} slots "
        f"skipped while a run was going, {archive['failures']} failed, {archive['archived_records']:,} records "
        f"archived; archive + stream hold {archive['held']:,} records, the run's acknowledged (200) predictions "
        f"and feedbacks {archive['appended']:,} (held - acknowledged: {archive['held'] - archive['appended']:+,}; "
        "a request answered 503 may still have been stored, a count below 0 would be a loss)."
    )


def write_results(
    a: argparse.Namespace,
    base: dict,
    after: dict,
    base_redis: float | None,
    state: str | None,
    trend: list[dict],
    stats: dict,
    done: int,
    seconds: float,
    finished: bool,
    clock: FakeClock | None,
    faketime: dict[str, str],
    archive: dict | None = None,
) -> dict:
    """The JSON + MD results so far (rewritten at every tenth: a run stopped early keeps what it measured)."""
    per = {
        name: {
            "baseline_anon_mib": base[name]["anon_mib"],
            "after_anon_mib": after[name]["anon_mib"],
            "anon_growth_mib": round(after[name]["anon_mib"] - base[name]["anon_mib"], 1),
            "uss_growth_mib": round(after[name]["uss_mib"] - base[name]["uss_mib"], 1),
            "pss_growth_mib": round(after[name]["pss_mib"] - base[name]["pss_mib"], 1),
            "rss_growth_mib": round(after[name]["rss_mib"] - base[name]["rss_mib"], 1),
            "processes": after[name]["processes"],
            "faketime_mapped": faketime.get(name),
        }
        for name in base
        if name in after
    }
    growth = round(sum(p["anon_growth_mib"] for name, p in per.items() if name != REDIS_PROCESS), 1)
    redis_growth = None if state is None else round(trend[-1]["redis_used_mib"] - base_redis, 2)
    total_mb = growth * MIB / 1e6 + (redis_growth or 0) * MIB / 1e6
    res = {
        "predictions": done,
        "predictions_asked": a.predictions,
        "finished": finished,
        "feedback_every": a.feedback_every,
        "warmup": a.warmup,
        "concurrency": a.concurrency,
        "graph": "fused" if a.fused else "five-node",
        "state": "redis" if state else "local (SQLite node state, segment event log, local cache)",
        "requests": {str(k): v for k, v in stats.items()},
        "seconds": round(seconds, 1),
        "predictions_per_s": round(done / seconds, 1),
        "processes": per,
        "anon_growth_mib_total": growth,
        "redis_used_memory_growth_mib": redis_growth,
        "growth_mb_total": round(total_mb, 1),
        "limit_mb": LIMIT_MB,
        "within_limit": total_mb < LIMIT_MB,
        "trend": trend,
        "load_average_at_end": os.getloadavg(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "clock": _clock_text(a, clock),
        "day_every": a.day_every if clock else None,
        "faketime_processes": faketime,
        "faketime_env": {k: v for k, v in clock.env().items() if k != "FAKETIME_TIMESTAMP_FILE"} if clock else None,
        "event_archive": archive,
    }
    Path(a.out + ".json").write_text(json.dumps(res, indent=2) + "\n")
    rows = "\n".join(
        f"| {n} | {p['processes']} | {p['faketime_mapped'] or '-'} | {p['baseline_anon_mib']} | "
        f"{p['after_anon_mib']} | {p['anon_growth_mib']} | {p['uss_growth_mib']} | "
        f"{p['pss_growth_mib']} | {p['rss_growth_mib']} |"
        for n, p in sorted(per.items())
    )
    trend_rows = "\n".join(
        f"| {t['predictions']:,} | {t['anon_growth_mib']} | {t['uss_growth_mib']} | "
        f"{t['pss_growth_mib']} | {t['redis_used_mib']} | {t['seconds']} | {t['load_1m']} |"
        for t in trend
    )
    keys = [k for k in trend[-1]["retention"]]
    evidence = (
        "| predictions | "
        + " | ".join(keys)
        + " |\n|---|"
        + "---|" * len(keys)
        + "\n"
        + "\n".join(
            f"| {t['predictions']:,} | " + " | ".join(str(t["retention"].get(k)) for k in keys) + " |" for t in trend
        )
    )
    load = ", ".join(f"{x:.1f}" for x in res["load_average_at_end"])
    Path(a.out + ".md").write_text(
        f"# Graph memory: {done:,} predictions with distinct 128-character request ids, "
        f"{stats.get('feedback 200', 0):,} feedbacks ({res['graph']} graph, {res['state']})\n\n"
        f"{'' if finished else f'**Stopped early: {done:,} of the {a.predictions:,} asked.** '}"
        f"`benchmarks/graph_memory.py --predictions {a.predictions}{' --fused' if a.fused else ''}"
        f"{' --redis' if a.redis else ''}{' --real-clock' if clock is None else ''}`: every graph process, "
        f"anonymous-memory PSS growth after a {a.warmup:,}-prediction warm-up. Total growth "
        f"**{res['growth_mb_total']} MB** (limit {LIMIT_MB:g} MB: {'within' if res['within_limit'] else 'OVER'}); "
        f"Redis used_memory growth: {redis_growth} MiB{REDIS_NOTE if state else ''}. "
        f"{res['predictions_per_s']} predictions/s over "
        f"{res['seconds']} s with {a.concurrency} clients on {res['cpus']} CPUs, load average at the end {load}. "
        f"Requests: {res['requests']}. Clock: {res['clock']}.{_archive_text(archive)}\n\n"
        "| process | processes | map libfaketime | baseline anon PSS MiB | after anon PSS MiB | anon PSS growth MiB "
        "| USS growth MiB | PSS growth MiB | RSS growth MiB |\n"
        "|---|---|---|---|---|---|---|---|---|\n" + rows + "\n\n"
        "| predictions | anon PSS growth MiB | USS growth MiB | PSS growth MiB | Redis used MiB | seconds "
        "| load 1 min |\n|---|---|---|---|---|---|---|\n" + trend_rows + "\n\n"
        "Retention at each tenth (`retention_evidence`: rows / keys / ids held, ages on the simulated clock; "
        "`*_vs_clock_s` = a time the process wrote minus the simulated clock, about 0 when it runs on it):\n\n"
        + evidence
        + "\n"
    )
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--predictions", type=int, default=100_000)
    ap.add_argument("--feedback-every", type=int, default=10, help="one feedback per this many predictions")
    ap.add_argument("--warmup", type=int, default=1000, help="predictions before the baseline snapshot")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--fused", action="store_true", help="router over two fused arms (default: the five-node graph)")
    ap.add_argument("--redis", action="store_true", help="shared state in a private redis-server (--state)")
    ap.add_argument("--day-every", type=int, default=10_000, help="predictions per simulated day")
    ap.add_argument("--real-clock", action="store_true", help="no simulated clock (retention never expires)")
    ap.add_argument(
        "--faketime-lib",
        default=None,
        help="libfaketime.so.1 to preload (default: probe " + ", ".join(FAKETIME_CANDIDATES) + ")",
    )
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs, state) and print it")
    ap.add_argument("--out", default=str(RESULTS / "graph_memory"))
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the graph (finally) on a plain kill too
    tmp = tempfile.mkdtemp(prefix="graph-memory-")
    work = Path(tmp)
    clock = None
    if not a.real_clock:
        clock = FakeClock(work / "faketime.rc", faketime_lib(a.faketime_lib, work), a.day_every)
        os.environ.update(clock.env())  # redis-server and the executor (and through it every node) inherit it
    redis, cron = None, None
    try:
        if a.redis:
            from smartreco.testing.redis_server import RedisServer

            redis = RedisServer(work / "redis", appendfsync="everysec")
            redis.start()
        state = redis.url if redis else None
        proc, info = start_graph(work, a.fused, state)
        try:
            nodes = {name: d["pid"] for name, d in info["nodes"].items()}
            if redis is not None:
                cron = ArchiveCron(clock, redis.url, work / "events-archive", cronjob_schedule())
                cron.start()
            url, warm = info["rest"], {}
            asyncio.run(drive(url, 10**9, a.warmup, a.feedback_every, a.concurrency, warm))
            groups = process_groups(proc.pid, nodes)
            if redis is not None:
                groups[REDIS_PROCESS] = [redis.proc.pid]  # used_memory is the figure; its anon PSS is shown too
            base, base_redis = snapshot(groups), redis_used_mib(state)
            trend, done, started = [], 0, time.perf_counter()
            step = max(1, a.predictions // 10)
            stats = {}
            while done < a.predictions:
                n = min(step, a.predictions - done)
                tick = None
                if clock is not None:

                    def tick(k: int, at: int = done) -> None:  # the clock moves every 10 predictions
                        if k % 10 == 0:
                            clock.at(at + k)

                asyncio.run(drive(url, done, n, a.feedback_every, a.concurrency, stats, tick))
                done += n
                if clock is not None:
                    clock.at(done)
                groups = process_groups(proc.pid, nodes)
                if redis is not None:
                    groups[REDIS_PROCESS] = [redis.proc.pid]
                snap = snapshot(groups)
                faketime = faketime_mapped(groups, clock.lib) if clock else {}
                trend.append(
                    {
                        "predictions": done,
                        "anon_growth_mib": round(_total(snap, "anon_mib") - _total(base, "anon_mib"), 1),
                        "uss_growth_mib": round(_total(snap, "uss_mib") - _total(base, "uss_mib"), 1),
                        "pss_growth_mib": round(_total(snap, "pss_mib") - _total(base, "pss_mib"), 1),
                        "redis_used_mib": redis_used_mib(state),
                        "seconds": round(time.perf_counter() - started, 1),
                        "load_1m": round(os.getloadavg()[0], 1),
                        "retention": retention_evidence(work, info["events"], state, clock),
                    }
                )
                print(json.dumps(trend[-1]), flush=True)
                archive = None
                if cron is not None:
                    held = trend[-1]["retention"]["archived_plus_stream"]
                    appended = sum(d.get(k, 0) for d in (warm, stats) for k in (200, "feedback 200"))
                    archive = cron.summary() | {"held": held, "appended": appended, "retention": _retention_text()}
                res = write_results(
                    a,
                    base,
                    snap,
                    base_redis,
                    state,
                    trend,
                    stats,
                    done,
                    time.perf_counter() - started,
                    done >= a.predictions,
                    clock,
                    faketime,
                    archive,
                )
        finally:
            if cron is not None:
                cron.stop()
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
    finally:
        if redis is not None:
            redis.stop()
        if a.keep:
            print(f"work folder kept: {work}", flush=True)
        else:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({k: res[k] for k in ("predictions", "growth_mb_total", "within_limit", "seconds")}))


if __name__ == "__main__":
    main()
