"""A tiny stand-in for smartreco.serving.bundle.ModelBundle with the same API (tests only).

Deterministic catalogue of items in a few categories; users "1".."40" are known to CF. Loaded
from a folder holding ``fake_bundle.json`` (no pickles), like the real bundle's manifest.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from smartreco.serving.runtime import RankedItem

CATEGORIES = ["Drama", "Comedy", "Action", "Horror", "Sci-Fi", "Romance"]


def write(folder: Path, n_items: int = 240, n_users: int = 40, version: str = "fake-1") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fake_bundle.json").write_text(
        json.dumps({"n_items": n_items, "n_users": n_users, "version": version})
    )
    return folder


class FakeBundle:
    def __init__(self, n_items: int, n_users: int, version: str) -> None:
        rng = np.random.default_rng(0)
        self.version = version
        self.items = [str(i) for i in range(1, n_items + 1)]
        self.category = {i: CATEGORIES[k % len(CATEGORIES)] for k, i in enumerate(self.items)}
        self.titles = {i: f"Movie {i}" for i in self.items}
        self.item_vec = {i: v for i, v in zip(self.items, rng.normal(size=(n_items, 8)), strict=True)}
        self.user_vec = {
            str(u): v for u, v in zip(range(1, n_users + 1), rng.normal(size=(n_users, 8)), strict=True)
        }
        self.pop = {i: 1.0 / (k + 1) for k, i in enumerate(self.items)}

    @classmethod
    def load(cls, path: str | Path) -> FakeBundle:
        cfg = json.loads((Path(path) / "fake_bundle.json").read_text())
        return cls(cfg["n_items"], cfg["n_users"], cfg["version"])

    def has_user(self, user_id: str) -> bool:
        return str(user_id) in self.user_vec

    def title(self, item_id: str) -> str:
        return self.titles[str(item_id)]

    def _top(self, scores: dict, k: int, exclude: set) -> dict:
        kept = [(i, s) for i, s in scores.items() if i not in exclude]
        kept.sort(key=lambda t: -t[1])
        return dict(kept[:k])

    def cf_candidates(self, user_id, history, k, exclude):
        vec = self.user_vec.get(str(user_id))
        if vec is None:
            known = [self.item_vec[h] for h in history if h in self.item_vec]
            if not known:
                return {}
            vec = np.mean(known, axis=0)  # fold-in
        return self._top({i: float(v @ vec) for i, v in self.item_vec.items()}, k, exclude)

    def cb_candidates(self, history, k, exclude):
        known = [h for h in history if h in self.item_vec]
        if not known:
            return {}
        centre = np.mean([self.item_vec[h] for h in known], axis=0)
        return self._top({i: float(v @ centre) for i, v in self.item_vec.items()}, k, exclude)

    def popular(self, k, exclude, category=None):
        pool = {i: s for i, s in self.pop.items() if category is None or self.category[i] == category}
        return self._top(pool, k, exclude)

    def rank(self, user_id, history, cf, cb, context, n, exclude, max_category_share=0.5, **session):
        # ``session``/``session_share``: the runtime's session rule (tests/unit/test_session_intent.py), not faked here
        pool = (set(cf) | set(cb)) - set(exclude)
        rows = []
        for i in pool:
            comps = {
                "cf": 0.5 * cf.get(i, 0.0),
                "cb": 0.6 * cb.get(i, 0.0),
                "cooccurrence": 0.0,
                "popularity": 0.3 * self.pop[i],
                "context": 0.0,
            }
            because = None
            if history and comps["cb"] > 0:
                because = max(
                    history, key=lambda h: float(self.item_vec.get(h, np.zeros(8)) @ self.item_vec[i])
                )
            rows.append((sum(comps.values()), i, comps, because))
        rows.sort(key=lambda r: -r[0])
        cap = max(1, int(max_category_share * n))
        per_cat: dict[str, int] = {}
        out = []
        for score, i, comps, because in rows:
            cat = self.category[i]
            if per_cat.get(cat, 0) >= cap:
                continue
            per_cat[cat] = per_cat.get(cat, 0) + 1
            out.append(
                RankedItem(
                    i,
                    self.titles[i],
                    cat,
                    score,
                    len(out) + 1,
                    float(1 / (1 + np.exp(-score))),
                    comps,
                    because,
                )
            )
            if len(out) == n:
                break
        return out


def load(path: str | Path) -> FakeBundle:
    return FakeBundle.load(path)


HISTORY = {"7": ["10", "11", "12"], "cold-with-history": ["3", "4"]}


def read_features(user_id: str) -> dict:
    """Fake online-store reader: a few users with recent items, everyone else unknown."""
    if user_id == "store-down":
        raise ConnectionError("online store unreachable")
    if user_id in HISTORY:
        return {"recent_items": HISTORY[user_id], "n_interactions": len(HISTORY[user_id])}
    return {}


# ---------------------------------------------------------------------------- running graph helpers
def node_env() -> dict[str, str]:
    """Environment for the graph's nodes (processes or in-process) to use the fakes above."""
    import os

    here = str(Path(__file__).resolve().parent)
    return {
        "SMARTRECO_BUNDLE_LOADER": "graph_fake_bundle:load",
        "SMARTRECO_FEATURE_READER": "graph_fake_bundle:read_features",
        "PYTHONPATH": os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH", "")) if p),
    }


class GraphThread:
    """A LocalGraph served from an event loop in a background thread (sync tests talk to it)."""

    def __init__(self, tmp: Path, in_process: bool, mode: str = "fixed", cache: str = "off", **cfg) -> None:
        import asyncio
        import threading

        from inference_graph.executor.fusion import MODEL_URI_PARAMS
        from inference_graph.executor.server import LocalGraph, ServeConfig

        # the fakes reach the nodes through node_env alone (in-process too): this process's environment stays
        bundle = write(tmp / "bundle")
        overrides = {
            "*": dict.fromkeys(MODEL_URI_PARAMS, str(bundle)),
            "ab-router": {"store": str(tmp / "arms.sqlite"), "mode": mode},
        }
        cfg.setdefault("push_feedback", False)
        extra_env = cfg.pop("node_env", {})  # a test's own node variables, over the fakes
        # the nodes' shared state, per graph (a dedicated folder: node containers mount it read-write)
        cfg.setdefault("graph_state", str(tmp / "graph-state" / "state.sqlite"))
        self.cfg = ServeConfig(
            in_process=in_process,
            overrides=overrides,
            cache=cache,
            node_env={**node_env(), **extra_env},
            log_dir=str(tmp / "logs"),
            **cfg,
        )
        self.graph = LocalGraph(self.cfg)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        try:
            self.run(self.graph.start(), timeout=180)
        except BaseException:
            self.stop()
            raise

    def run(self, coro, timeout: float = 60):
        import asyncio

        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.graph.port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.graph.grpc_port}"

    def post(self, path: str, body, raw: bool = False) -> tuple[int, dict]:
        import urllib.error
        import urllib.request

        data = body if raw else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def stop(self) -> None:
        try:
            self.run(self.graph.stop(), timeout=60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
