"""A rollout by ``rehearse apply`` under a steady request stream through the graph's Service (issue #19 done-when:
"a rollout by `rehearse apply` drops no request of a steady 20 req/s stream"). A load measurement on this machine
(2 shared cores), not a CI check: ``rehearse up --overlay production --replicas 2`` (a tiny real hybrid bundle fitted
here through ``--models``; MLflow, PostgreSQL, Feast and the web app left out with ``--skip``, as the Services
container test does), a stream at ``--rate`` req/s from the host through the Service proxy (one connection per
request, no retries), ``rehearse apply`` of the live SeldonDeployment with a new annotation (``--rollouts`` times),
every failure counted by kind, and ``rehearse down`` leaving nothing.

Usage (engine needed, heavy: only in a slot you were given, at normal priority: it is a measurement; as root)::

    .venv/bin/python benchmarks/rehearsal_rollout.py --rate 20 --rollouts 2
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from smartreco.provenance import checkout_label  # noqa: E402 - after the path
from smartreco.rehearse import docker_args as da  # noqa: E402 - after the path
from smartreco.rehearse import kubelet, runner  # noqa: E402 - after the path
from smartreco.testing.tiny_bundle import save_tiny_bundle  # noqa: E402 - after the path

SERVICE = "smartreco-default"
SLOTS = ("hybrid-champion", "cf-champion", "cb-champion", "hybrid-challenger", "cf-challenger", "cb-challenger")
SKIP = ("mlflow", "postgres", "feast-feature-server", "smartreco-web")
N = 5


def cli(*args: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smartreco", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def cli_timed(*args: str, env: dict[str, str], since: float, timeout: float) -> tuple[int, str, list[list]]:
    """:func:`cli` with each ``[rehearse]`` line of its stderr stamped (s since ``since``) as it comes."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "smartreco", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: list[list] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append([round(time.time() - since, 1), line.rstrip()])

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    stdout, _ = proc.communicate(timeout=timeout)
    reader.join(timeout=30)
    return proc.returncode, stdout, lines


def container_cpu(rehearsal: str, pod_prefix: str) -> dict[str, float]:
    """CPU seconds each running container of the pods named ``pod_prefix*`` has used so far (cgroup v1)."""
    proc = subprocess.run(
        ["docker", "ps", "--no-trunc", "--filter", f"label={da.LABEL}={rehearsal}",
         "--format", '{{.ID}} {{.Label "' + da.LABEL_POD + '"}} {{.Label "' + da.LABEL_CONTAINER + '"}}'],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    out: dict[str, float] = {}
    for line in proc.stdout.splitlines():
        cid, pod, container = (line.split(" ") + ["", ""])[:3]
        if pod.startswith(pod_prefix):
            with contextlib.suppress(OSError, ValueError):
                out[f"{pod}/{container}"] = round(int((CpuSampler.ROOT / cid / "cpuacct.usage").read_text()) / 1e9, 2)
    return dict(sorted(out.items()))


def classify(exc: BaseException | None, status: int, answer: dict) -> str:
    """A request's outcome: ok, connection_reset / connection_refused / connection_other (the Service dropped it),
    503_GRAPH_UNAVAILABLE (the graph answered: a node past its deadline), timeout, or other."""
    if exc is not None:
        if isinstance(exc, TimeoutError):
            return "timeout"
        if isinstance(exc, ConnectionResetError):  # http.client.RemoteDisconnected is one
            return "connection_reset"
        if isinstance(exc, ConnectionRefusedError):
            return "connection_refused"
        return f"connection_other:{type(exc).__name__}"
    if status == 200 and len((answer.get("jsonData") or {}).get("recommendations") or []) == N:
        return "ok"
    reason = str((answer.get("status") or {}).get("reason"))
    if status == 503 and reason == "GRAPH_UNAVAILABLE":
        return "503_GRAPH_UNAVAILABLE"
    return f"other:{status}:{reason}"


class Stream:
    """``rate`` requests a second, each on its own connection through the Service (host -> its proxy)."""

    def __init__(self, host: str, port: int, rate: float) -> None:
        self.host, self.port, self.rate = host, port, rate
        self.lock = threading.Lock()
        self.results: list[dict] = []  # sent (Unix time), kind, client port, latency ms
        self.stop = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def one(self, i: int) -> None:
        sent, client_port, status, answer, exc = time.time(), 0, 0, {}, None
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        body = json.dumps({"jsonData": {"user_id": f"u{i % 60 + 1}", "num_recommendations": N}}).encode()
        try:
            conn.connect()
            client_port = conn.sock.getsockname()[1]
            conn.request("POST", "/api/v1.0/predictions", body, {"Content-Type": "application/json", "Host": SERVICE})
            resp = conn.getresponse()
            raw, status = resp.read(), resp.status
            answer = json.loads(raw) if raw else {}
        except (OSError, http.client.HTTPException, ValueError) as e:
            exc = e
        finally:
            conn.close()
        row = {"t": sent, "kind": classify(exc, status, answer), "client": client_port,
               "ms": round((time.time() - sent) * 1000, 1)}  # fmt: skip
        if row["kind"] != "ok":  # what the graph or the connection said
            row["info"] = str((answer.get("status") or {}).get("info") or exc or status)[:300]
        with self.lock:
            self.results.append(row)

    def _run(self) -> None:
        with ThreadPoolExecutor(32) as pool:
            t0 = time.monotonic()
            while not self.stop.is_set():
                wait = t0 + self.sent / self.rate - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                pool.submit(self.one, self.sent)
                self.sent += 1

    def between(self, start: float, end: float) -> dict:
        rows = [r for r in self.results if start <= r["t"] < end]
        kinds: dict[str, int] = {}
        for r in rows:
            kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
        lat = sorted(r["ms"] for r in rows if r["kind"] == "ok")
        return {
            "requests": len(rows),
            "failed": len(rows) - kinds.get("ok", 0),
            "by_kind": kinds,
            "p50_ms": lat[len(lat) // 2] if lat else None,
            "p99_ms": lat[int(len(lat) * 0.99)] if lat else None,
        }


class LoadSampler(threading.Thread):
    """The 1-minute load average every 5 s, and a progress line every 30 s while a stream runs."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[tuple[float, float]] = []
        self.halt = threading.Event()
        self.stream: Stream | None = None

    def run(self) -> None:
        while not self.halt.is_set():
            self.samples.append((time.time(), os.getloadavg()[0]))
            if self.stream is not None and len(self.samples) % 6 == 0:
                with self.stream.lock:
                    done = len(self.stream.results)
                    failed = sum(1 for r in self.stream.results if r["kind"] != "ok")
                print(f"[rollout] ... {self.stream.sent} sent, {done} answered or failed, {failed} failed, "
                      f"load {self.samples[-1][1]:.1f}", flush=True)  # fmt: skip
            self.halt.wait(5.0)

    def max_between(self, start: float, end: float) -> float | None:
        got = [load for t, load in self.samples if start <= t <= end]
        return round(max(got), 2) if got else None


class CpuSampler(threading.Thread):
    """Each pod's CPU seconds (all its containers, the pause one included) every ``period`` s, from the engine's
    cgroups (v1 ``cpuacct.usage``, cgroupfs driver): which pod used the cores while a new one started."""

    ROOT = Path("/sys/fs/cgroup/cpuacct/docker")

    def __init__(self, rehearsal: str, since: float, period: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.rehearsal, self.since, self.period = rehearsal, since, period
        self.halt = threading.Event()
        self.series: dict[str, list[tuple[float, float]]] = {}  # pod -> [(s since start, CPU s so far)]
        self.gone: dict[str, float] = {}  # CPU s of containers no longer there, per pod (a removed pod keeps its sum)
        self.last: dict[str, tuple[str, float]] = {}  # container id -> (pod, its last CPU s)

    def containers(self) -> dict[str, str]:
        proc = subprocess.run(
            ["docker", "ps", "--no-trunc", "--filter", f"label={da.LABEL}={self.rehearsal}",
             "--format", '{{.ID}} {{.Label "' + da.LABEL_POD + '"}}'],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        return dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line and line.split(" ", 1)[1])

    def sample(self, ids: dict[str, str]) -> None:
        now = round(time.time() - self.since, 1)
        per_pod: dict[str, float] = dict(self.gone)
        for cid, pod in ids.items():
            try:
                cpu = int((self.ROOT / cid / "cpuacct.usage").read_text()) / 1e9
            except (OSError, ValueError):
                continue
            self.last[cid] = (pod, cpu)
        for cid in [c for c in self.last if c not in ids]:  # removed since: keep what it used
            pod, cpu = self.last.pop(cid)
            self.gone[pod] = self.gone.get(pod, 0.0) + cpu
            per_pod[pod] = per_pod.get(pod, 0.0) + cpu
        for pod, cpu in self.last.values():
            per_pod[pod] = per_pod.get(pod, 0.0) + cpu
        for pod, cpu in per_pod.items():
            series = self.series.setdefault(pod, [])
            if not series or series[-1][1] != round(cpu, 2):
                series.append((now, round(cpu, 2)))

    def run(self) -> None:
        ids: dict[str, str] = {}
        n = 0
        while not self.halt.is_set():
            if n % 3 == 0:  # new containers appear when a pod starts: look every 3 periods
                ids = self.containers()
            self.sample(ids)
            n += 1
            self.halt.wait(self.period)

    def window(self, pod: str, start: float, end: float) -> float | None:
        """CPU s pod used between ``start`` and ``end`` (s since start), from its samples."""
        series = self.series.get(pod) or []
        before = [c for t, c in series if t <= start]
        inside = [c for t, c in series if t <= end]
        if not inside:
            return None
        return round(inside[-1] - (before[-1] if before else 0.0), 2)


def pods_of_failures(proxy: str, since: float, failed: list[dict]) -> dict[str, int]:
    """Which pod the proxy sent each failed connection to ("none": no ready endpoint), from its log read once."""
    logs = subprocess.run(["docker", "logs", "--since", f"{since:.3f}", proxy], capture_output=True, text=True)
    by_port: dict[str, str] = {}
    for line in logs.stdout.splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("client"):
                by_port[entry["client"].rsplit(":", 1)[1]] = entry.get("pod") or "none (no ready endpoint)"
    out: dict[str, int] = {}
    for r in failed:
        pod = by_port.get(str(r["client"]), "not logged")
        out[pod] = out.get(pod, 0) + 1
    return out


def write_md(path: Path, out: dict) -> None:
    lines = [
        "# Rehearsal rollout under a steady stream (issue #19)",
        "",
        f"{out['machine']}. Commit {out['commit']}, {out['started_utc']}. Not a CI test: a load measurement.",
        "",
        "Images: " + ("; ".join(f"{i['image']} {i['note']}" for i in out.get("image_sources") or [])
                      or "which code they held was not recorded") + ".",
        "",
        f"`rehearse up --overlay production --replicas 2` (tiny hybrid bundle via --models; skipped: "
        f"{', '.join(SKIP)}) in {out['up_seconds']} s; a stream at {out['rate']} req/s from the host through the "
        f"Service {SERVICE} (one connection per request, no retry); `rehearse apply` of the live SeldonDeployment "
        f"(replicas 2, new annotation), rolled as the operator's Deployment: surge {out['rollouts'][0]['surge']}, "
        f"unavailable {out['rollouts'][0]['unavailable']}; a deleted old pod leaves the Service while it is killed "
        f"as the kubelet kills it (the graph nodes' preStop sleep 10 that the operator adds, the executor SIGTERM "
        f"at once, SIGKILL after the 30 s grace period), and the rollout does not wait for it ('rollout s': new pods "
        f"ready and old ones deleted; 'old pods gone s': apply returned, every old container gone)."
        if out["rollouts"]
        else "",
        "",
        "| rollout | requests during | failed | by kind | rollout s | old pods gone s | load before | max load during "
        "| load after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(out["rollouts"], 1):
        d = r["during"]
        lines.append(
            f"| {i} | {d['requests']} | {d['failed']} | {json.dumps(d['by_kind'])} | {r.get('rollout_seconds')} | "
            f"{r.get('terminated_seconds')} | {r['load_before']} | {r['max_load_during']} | {r['load_after']} |"
        )
    t = out["total"]
    lines += [
        "",
        f"Whole stream: {t['requests']} requests, {t['failed']} failed {json.dumps(t['by_kind'])}, "
        f"p50/p99 {t['p50_ms']}/{t['p99_ms']} ms. Load average {out['load_before']} before, {out['load_after']} after.",
        f"Failed requests by the pod the Service sent them to: {json.dumps(out['failed_by_pod'])}; when (s after "
        f"the stream started), kind, ms: {json.dumps(out['failed_at_s_after_start'][:40])}.",
        f"Start-up CPU of the graph pods of `up` (CPU s per pod, all containers, until every pod was ready; no "
        f"request yet): {json.dumps(out.get('startup_cpu_s_per_pod'))}; per container in the JSON.",
        f"`rehearse down` left: {json.dumps(out['left_after_down'])}.",
        "",
    ]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rate", type=float, default=20.0, help="requests per second (default 20)")
    ap.add_argument("--rollouts", type=int, default=1, help="rehearse apply this many times in one rehearsal")
    ap.add_argument("--settle", type=float, default=10.0, help="seconds of stream before and after each rollout")
    ap.add_argument("--name", default=f"bench-rollout-{os.getpid()}", help="the rehearsal's name")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/rehearsal_rollout.json")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="rehearsal-rollout-"))
    env = {**os.environ, "SMARTRECO_REHEARSAL_DIR": str(tmp / "state")}
    out: dict = {
        "benchmark": "rehearsal_rollout",
        "machine": (
            "a rehearsal on 2 CPU cores (24 GiB) that also run the Docker engine and the stream's client "
            "(the load averages say what else ran)"
        ),
        "commit": checkout_label(ROOT),
        "started_utc": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "rate": args.rate,
        "load_before": [round(x, 2) for x in os.getloadavg()],
        "rollouts": [],
    }
    sampler = LoadSampler()
    sampler.start()
    stream = None
    try:
        print(f"[rollout] fitting the tiny bundle, load {os.getloadavg()[0]:.1f}", flush=True)
        bundle = tmp / "bundle"
        save_tiny_bundle(bundle)
        models = tmp / "models"
        for slot in SLOTS:
            shutil.copytree(bundle, models / slot)
        skips = [a for s in SKIP for a in ("--skip", s)]
        began = time.monotonic()
        cpu = CpuSampler(args.name, since=time.time())
        cpu.start()
        print("[rollout] rehearse up --overlay production --replicas 2 ...", flush=True)
        up = cli("rehearse", "up", "--overlay", "production", "--replicas", "2", "--models", str(models),
                 "--name", args.name, *skips, "--json", "--timeout", "1200", env=env, timeout=1800)  # fmt: skip
        if up.returncode != 0:
            raise SystemExit(f"rehearse up failed:\n{up.stderr[-4000:]}")
        out["up_seconds"] = round(time.monotonic() - began, 1)
        # the graph pods' start-up CPU: what each container used from its start until every pod was ready and in
        # the Service (no request yet, only probes)
        out["startup_cpu_s"] = container_cpu(args.name, SERVICE)
        per_pod: dict[str, float] = {}
        for key, value in out["startup_cpu_s"].items():
            per_pod[key.split("/")[0]] = round(per_pod.get(key.split("/")[0], 0.0) + value, 2)
        out["startup_cpu_s_per_pod"] = per_pod
        print(f"[rollout] up in {out['up_seconds']} s; start-up CPU per graph pod {per_pod}", flush=True)
        state = json.loads(up.stdout)
        # whether the images it ran hold this checkout's code (the rehearsal runs the engine's images as they are)
        out["image_sources"] = state.get("image_sources", [])
        host, port = state["endpoints"]["services"][f"{SERVICE}:http"].split(":")
        folder = Path(state["kubelet"]).parent
        stream = Stream(host, int(port), args.rate)
        sampler.stream = stream
        since = time.time()
        stream.thread.start()
        for i in range(1, args.rollouts + 1):
            time.sleep(args.settle)
            live = subprocess.run(
                [sys.executable, "-c", "import json, sys; from smartreco.rehearse import session; "
                 "print(json.dumps(session.live_seldon(sys.argv[1])))", args.name],
                cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True,
            )  # fmt: skip
            sdep = json.loads(live.stdout)
            sdep["metadata"].setdefault("annotations", {})["smartreco.io/rollout"] = uuid.uuid4().hex[:8]
            sdep["spec"]["predictors"][0]["replicas"] = 2
            applied = tmp / f"sdep-{i}.yaml"
            applied.write_text(yaml.safe_dump(sdep))
            load_before = round(os.getloadavg()[0], 2)
            start_wall, start = time.time(), time.monotonic()
            print(f"[rollout] {i}/{args.rollouts}: rehearse apply, {len(stream.results)} requests so far, "
                  f"load {load_before}", flush=True)  # fmt: skip
            code, stdout, stamped = cli_timed("rehearse", "apply", "-f", str(applied), "--models", str(models),
                                              "--name", args.name, env=env, since=since, timeout=1800)  # fmt: skip
            seconds = round(time.monotonic() - start, 1)
            end_wall = time.time()
            row = {"apply_seconds": seconds, "load_before": load_before, "returncode": code}
            if code == 0:
                row.update(json.loads(stdout))
            else:
                row["error"] = "\n".join(line for _, line in stamped[-40:])
            time.sleep(2.0)  # the last answers of requests sent during the rollout
            row["during"] = stream.between(start_wall, end_wall)
            row["load_after"] = round(os.getloadavg()[0], 2)
            row["max_load_during"] = sampler.max_between(start_wall, end_wall)
            row["apply_log"] = [[t, ln] for t, ln in stamped if ln.startswith("[rehearse]")][-30:]
            window = (round(start_wall - since, 1), round(end_wall - since, 1))
            row["window_s_after_start"] = window
            in_cpu = (start_wall - cpu.since, end_wall - cpu.since)
            row["cpu_s_during"] = {pod: cpu.window(pod, *in_cpu) for pod in sorted(cpu.series) if SERVICE in pod}
            out["rollouts"].append(row)
            d = row["during"]
            print(f"[rollout] {i}/{args.rollouts}: {seconds} s, {d['requests']} requests during it, {d['failed']} "
                  f"failed {d['by_kind']}, load {row['load_after']}", flush=True)  # fmt: skip
            if code != 0:
                break
        time.sleep(args.settle)
        stream.stop.set()
        sampler.stream = None
        stream.thread.join(timeout=120)
        time.sleep(2.0)
        out["total"] = stream.between(0.0, time.time() + 1)
        out["total"]["sent"] = stream.sent
        out["total"]["achieved_rps"] = round(stream.sent / max(time.time() - since, 1e-9), 2)
        failed = [r for r in stream.results if r["kind"] != "ok"]
        out["failed_by_pod"] = pods_of_failures(f"{args.name}-svc-{SERVICE}", since, failed)
        out["failed_at_s_after_start"] = [(round(r["t"] - since, 1), r["kind"], r["ms"]) for r in failed][:200]
        out["failed_info"] = [r.get("info") for r in failed][:200]
        cpu.halt.set()
        out["pod_cpu_series"] = {  # (s since the stream started, CPU s so far): every 2nd sample, to keep it short
            pod: [(round(t - (since - cpu.since), 1), c) for t, c in series[::2]]
            for pod, series in sorted(cpu.series.items())
            if SERVICE in pod
        }
        events = (folder / kubelet.LOG_FILE).read_text().splitlines() if (folder / kubelet.LOG_FILE).exists() else []
        out["kubelet_events"] = events[-60:]
    finally:
        if stream is not None:
            stream.stop.set()
        print("[rollout] rehearse down ...", flush=True)
        down = cli("rehearse", "down", "--name", args.name, env=env, timeout=900)
        out["left_after_down"] = runner.leftovers(args.name)
        out["down_returncode"] = down.returncode
        out["load_after"] = [round(x, 2) for x in os.getloadavg()]
        sampler.halt.set()
        shutil.rmtree(tmp, ignore_errors=True)
        if "total" in out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(out, indent=1) + "\n")
            write_md(args.out.with_suffix(".md"), out)
            print(f"[rollout] wrote {args.out} and {args.out.with_suffix('.md')}", flush=True)
    t = out["total"]
    print(f"[rollout] {t['requests']} requests, {t['failed']} failed {t['by_kind']}; left: {out['left_after_down']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
