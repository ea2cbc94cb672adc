"""Every configuration variable of SmartReco, declared once: name, type, default, one line of doc and the
deployables that need it. Read when used (``FEATURE_SERVER.get()``), never captured at import time, so a
test's ``monkeypatch.setenv`` or a launcher's environment always wins.

Why one module: the manifests' ConfigMaps, the README's Configuration table and the code must agree on
names (a ConfigMap once set ``FEAST_FEATURE_SERVER_URL`` while the code read ``SMARTRECO_FEATURE_SERVER``,
so on a cluster every user was served as unknown). ``tests/unit/test_settings_manifests.py`` renders every
overlay and checks each deployable against :data:`SETTINGS`; ``python -m smartreco.settings --markdown``
prints the README table.

In-process graph nodes (``smartreco serve --in-process``, the tests' graphs) share one process, so they cannot
each have an environment: :func:`node_environment` gives the code it wraps an overlay of the environment (the
node's own variables over the process's), the way a node process gets its own environment, and ``get()``
reads through it. The nodes' code reads its settings as everywhere else and never knows which it has.

Adding a variable: declare a :class:`Setting` below (``needs``: which deployables read it; ``cluster``: how
it reaches them on a cluster) and read it with ``.get()`` where it is used. Stdlib only: the serving image
(no torch, no feast) and the KFP step images import it.

Deployable names used in ``needs``: ``node:*`` (every Seldon graph node container), ``node:<name>`` (one
node, e.g. ``node:feature-transformer``), ``init:model-fetch`` (the nodes' model download init container),
``feast`` (feature server Deployment), ``mlflow`` (tracking server Deployment), ``executor`` (the local
graph executor, ``smartreco serve``), ``event-service``, ``events-archive`` (its archiver CronJob), ``web``,
``pipeline-step`` (KFP component steps), ``cli`` (the ``smartreco`` command on a workstation), ``build`` (image
builds), ``scripts`` (scripts/*.sh).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

T = TypeVar("T")

#: how a variable reaches its deployables on a cluster (checked against the rendered overlays)
CLUSTER_WAYS = {
    "config": "set for every deployable in `needs` by a ConfigMap/Secret/env in every overlay",
    "default": "not set on a cluster: the default is right there",
    "image": "set by the image (Dockerfile ENV)",
    "platform": "set by Seldon Core / Kubernetes itself",
    "local": "only used off-cluster (workstation, CI, local executor)",
}


#: the environment overlay of the code running now (None: the process environment alone); a ContextVar, so
#: concurrent in-process graphs (each on its own event loop thread, or in its worker threads) do not mix
_OVERLAY: ContextVar[Mapping[str, str] | None] = ContextVar("smartreco_settings_overlay", default=None)


@contextlib.contextmanager
def node_environment(env: Mapping[str, str]) -> Iterator[None]:
    """Run the enclosed code as if ``env`` were set over the process environment (a blank value is unset,
    as in the environment), without touching ``os.environ``: what an in-process node sees where a node
    process would have its own environment. Nested overlays add up, the inner one winning. Only
    :class:`Setting` reads see it (not third-party code reading ``os.environ``), and only in this context:
    a thread the enclosed code starts itself does not inherit it (``contextvars.copy_context`` would)."""
    outer = _OVERLAY.get()
    token = _OVERLAY.set({**outer, **env} if outer else env)  # a node's call: no copy of its environment
    try:
        yield
    finally:
        _OVERLAY.reset(token)


def environ(name: str) -> str | None:
    """The variable ``name`` as the running code sees it: its :func:`node_environment` overlay, else the
    process environment."""
    overlay = _OVERLAY.get()
    if overlay is not None and name in overlay:
        return overlay[name]
    return os.environ.get(name)


class SettingError(ValueError):
    """A configuration variable holds a value that cannot be parsed; the message names the variable."""


def _parse_str(raw: str) -> str:
    return raw


def _parse_int(raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ValueError("expected an integer") from None


def _parse_float(raw: str) -> float:
    try:
        return float(raw.strip())
    except ValueError:
        raise ValueError("expected a number") from None


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected one of 1/0, true/false, yes/no, on/off")


def _parse_path(raw: str) -> Path:
    return Path(raw).expanduser()


def _parse_json_object(raw: str) -> dict:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"expected a JSON object ({exc.msg} at char {exc.pos})") from None
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return value


def _parse_http_url(raw: str) -> str:
    """``host:port`` or ``http(s)://host:port[/prefix]`` -> the URL (``http://`` added to a bare host:port)."""
    value = raw.strip().rstrip("/")
    if "://" not in value:
        value = f"http://{value}"
    scheme, _, rest = value.partition("://")
    if scheme not in ("http", "https") or not rest or rest.startswith(":"):
        raise ValueError("expected host:port or http(s)://host:port")
    return value


_PARSERS: dict[str, Callable[[str], Any]] = {
    "str": _parse_str, "int": _parse_int, "float": _parse_float, "bool": _parse_bool,
    "path": _parse_path, "json": _parse_json_object, "url": _parse_http_url,
}


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One environment variable: ``get()`` reads and parses it now (``default`` when unset or empty)."""

    name: str
    type: str
    default: Any
    doc: str
    needs: tuple[str, ...]
    cluster: str = "default"
    #: who reads it: "smartreco" (this code) or the third-party tool that does (mlflow, feast, seldon-core, ...)
    reader: str = "smartreco"
    #: how the default shows in the README when it is computed (callable default)
    default_doc: str = ""
    #: optional check of the parsed value (raise ValueError with the reason)
    check: Callable[[Any], None] | None = None
    #: the Secret (not in the repo, docs/deploying.md) whose keys reach the deployables by ``envFrom.secretRef``
    secret: str = ""

    def __post_init__(self) -> None:
        if self.type not in _PARSERS:
            raise ValueError(f"{self.name}: unknown setting type {self.type!r}")
        if self.cluster not in CLUSTER_WAYS:
            raise ValueError(f"{self.name}: cluster must be one of {sorted(CLUSTER_WAYS)}")

    def raw(self) -> str | None:
        """The variable's text now (through the running code's :func:`node_environment`), None when unset or
        blank."""
        value = environ(self.name)
        return value if value is not None and value.strip() else None

    def is_set(self) -> bool:
        return self.raw() is not None

    def default_value(self) -> Any:
        return self.default() if callable(self.default) else self.default

    def parse(self, raw: str) -> Any:
        """``raw`` parsed as this variable; SettingError naming the variable when it does not parse."""
        try:
            value = _PARSERS[self.type](raw)
            if self.check is not None:
                self.check(value)
        except ValueError as exc:
            raise SettingError(f"{self.name}={raw!r}: {exc} ({self.doc})") from None
        return value

    def get(self) -> Any:
        """The parsed value now, else the default."""
        raw = self.raw()
        return self.default_value() if raw is None else self.parse(raw)

    def shown_default(self) -> str:
        if self.default_doc:
            return self.default_doc
        if self.default is None or self.default == "":
            return "(unset)"
        return f"`{self.default}`"


def _at_least_1(value: int) -> None:
    if value < 1:
        raise ValueError("must be >= 1")


def _not_negative(value: float) -> None:
    if value < 0:
        raise ValueError("must be >= 0")


def _module_attr(value: str) -> None:
    if ":" not in value or not all(value.partition(":")[::2]):
        raise ValueError("expected module.path:attribute")


def _version() -> str:
    from smartreco import __version__

    return __version__


def _checkout() -> Path:
    return Path(__file__).resolve().parent.parent


SETTINGS: dict[str, Setting] = {}


def _declare(*args: Any, **kwargs: Any) -> Setting:
    setting = Setting(*args, **kwargs)
    if setting.name in SETTINGS:
        raise ValueError(f"{setting.name} declared twice")
    SETTINGS[setting.name] = setting
    return setting


# ------------------------------------------------------------------------------------------ places
#: what runs the project's code from a checkout or an image
_PROJECT_CODE = ("node:*", "pipeline-step", "event-service", "web", "executor", "cli")
HOME = _declare("SMARTRECO_HOME", "path", _checkout, "Project root (data/, feature_repo/): the checkout, or the "
                "image's copy.", _PROJECT_CODE, cluster="image",
                default_doc="the checkout holding `smartreco/`")
RUNS = _declare("SMARTRECO_RUNS", "path", lambda: HOME.get() / "runs", "Working folder of local runs (MLflow db, "
                "Feast stores, pipeline roots, logs).", _PROJECT_CODE,
                cluster="image", default_doc="`$SMARTRECO_HOME/runs`")
FEATURE_DATA = _declare("SMARTRECO_FEATURE_DATA", "path", None, "Offline feature parquet folder Feast's "
                        "definitions read (feature_repo/definitions.py).", ("pipeline-step", "cli"),
                        default_doc="`$SMARTRECO_RUNS/features`")
SERVICES_DIR = _declare("SMARTRECO_SERVICES_DIR", "path", Path("/tmp/smartreco-services"), "Where "
                        "`scripts/services.sh start` records the local services it started (redis.url).",
                        ("cli", "scripts"), cluster="local")
REHEARSAL_DIR = _declare("SMARTRECO_REHEARSAL_DIR", "path", lambda: Path.home() / ".cache" / "smartreco" / "rehearsal",
                         "Folder of `smartreco rehearse` state, outside the repository: the generated Secrets "
                         "(0600), ConfigMap files, the rendered objects, the last `up` summary.", ("cli",),
                         cluster="local", default_doc="`~/.cache/smartreco/rehearsal`")

# ------------------------------------------------------------------------------- features / stores
FEATURE_SERVER = _declare("SMARTRECO_FEATURE_SERVER", "url", "http://127.0.0.1:6566", "Feast feature server "
                          "(`feast serve`): host:port or http(s) URL.", ("node:*",),
                          cluster="config")
REDIS_URL = _declare("SMARTRECO_REDIS_URL", "str", None, "Redis online store, Feast connection string "
                     "host:port[,db=N,ssl=true] (password from the smartreco-redis Secret, REDIS_PASSWORD).",
                     ("feast", "pipeline-step", "cli"), cluster="config",
                     default_doc="the URL in `$SMARTRECO_SERVICES_DIR/redis.url`, else `127.0.0.1:6390`")
REDIS_PORT = _declare("SMARTRECO_REDIS_PORT", "int", 6390, "Port `scripts/services.sh` starts the local Redis on.",
                      ("scripts",), cluster="local")
FEATURE_READER = _declare("SMARTRECO_FEATURE_READER", "str", "smartreco.features.online_client:get_user_features",
                          "module:function the feature transformer reads user features with (tests swap it).",
                          ("node:feature-transformer",), check=_module_attr)

# ------------------------------------------------------------------------------------------ models
MODEL_URIS = _declare("SMARTRECO_MODEL_URIS", "json", dict, "JSON map model_uri -> local folder the nodes load "
                      "(filled by model-fetch).", ("node:*", "init:model-fetch"), cluster="config",
                      default_doc="`{}` (URIs resolved as given)")
BUNDLE_LOADER = _declare("SMARTRECO_BUNDLE_LOADER", "str", "smartreco.serving.bundle:ModelBundle.load",
                         "module:function that loads a model bundle folder (tests swap it).", ("node:*",),
                         check=_module_attr)
ALS_THREADS = _declare("SMARTRECO_ALS_THREADS", "int", None, "Threads for the ALS baseline fit.",
                       ("pipeline-step", "cli"), check=_at_least_1,
                       default_doc="1 below 1M interactions, else all CPUs")
FAISS_THREADS = _declare("SMARTRECO_FAISS_THREADS", "int", 1, "OpenMP threads faiss searches with (one per node "
                         "process: the pod's CPU limit is the parallelism).", ("node:*", "pipeline-step"),
                         check=_at_least_1)

ABLATION_BUDGET_S = _declare("SMARTRECO_ABLATION_BUDGET_S", "float", 300.0, "Wall-clock budget (s) of "
                             "`smartreco evaluate`'s ablation; variants not started in time are listed as not "
                             "run (0 = no limit).", ("cli", "pipeline-step"), check=_not_negative)

# ----------------------------------------------------------------------------------------- serving
METRICS_FLUSH_S = _declare("SMARTRECO_METRICS_FLUSH_S", "float", 1.0, "Seconds between node metric flushes to "
                           "the Seldon wrapper (each flush is IPC).", ("node:*",), cluster="config",
                           check=_not_negative)
LIVE_ITEMS_REFRESH_S = _declare("SMARTRECO_LIVE_ITEMS_REFRESH_S", "float", 1.0, "Seconds between a node's "
                                "checks of the live items' version (`smartreco items add`: new items served "
                                "before a retrain); 0 = every request, negative = live items off.", ("node:*",))
LIVE_ITEMS_SLOTS = _declare("SMARTRECO_LIVE_ITEMS_SLOTS", "int", 1, "Positions of a list kept for new items "
                            "(`smartreco items add`) that content alone ranks in its top n but the ranker, with no "
                            "interactions to go on, scores lower (0 = by score only).", ("node:*",),
                            check=_not_negative)
GRAPH_URL = _declare("SMARTRECO_GRAPH_URL", "url", "http://127.0.0.1:8000", "Graph the `smartreco recommend` / "
                     "`feedback` client calls.", ("cli",), cluster="local")
API_TOKEN = _declare("SMARTRECO_API_TOKEN", "str", None, "Bearer token the local executor requires (unset: no "
                     "auth on 127.0.0.1 only).", ("executor",), cluster="local")
API_TOKEN_FILE = _declare("SMARTRECO_API_TOKEN_FILE", "path", None, "File holding the executor's bearer token "
                          "(wins over SMARTRECO_API_TOKEN).", ("executor",), cluster="local")
ALLOWED_HOSTS = _declare("SMARTRECO_ALLOWED_HOSTS", "str", "", "Comma-separated host names the local executor "
                         "answers besides loopback (localhost, 127.0.0.1, ::1); any other Host header is a 421 "
                         "(DNS rebinding).", ("executor",), cluster="local", default_doc="(unset: loopback only)")
CORS_ORIGINS = _declare("SMARTRECO_CORS_ORIGINS", "str", "", "Comma-separated browser origins "
                        "(scheme://host[:port]) the local executor offers CORS to; a request from any other "
                        "cross-site Origin is a 403.", ("executor",), cluster="local",
                        default_doc="(unset: no CORS)")
SELDON = _declare("SMARTRECO_SELDON", "str", "", "`apache`: run nodes with the Apache-2.0 seldon-core 1.17.1 venv; "
                  "unset: the serving venv's 1.19.", ("executor",), cluster="local")
SELDON_VENV = _declare("SMARTRECO_SELDON_VENV", "path", None, "Any venv holding seldon-core-microservice (wins "
                       "over SMARTRECO_SELDON).", ("executor",), cluster="local")
NODE_ID = _declare("PREDICTIVE_UNIT_ID", "str", None, "The graph node's name, set by Seldon's operator (and by the "
                   "local executor).", ("node:*",), cluster="platform", reader="seldon-core",
                   default_doc="the node class name")
GRAPH_STATE = _declare("SMARTRECO_GRAPH_STATE", "path", lambda: RUNS.get() / "graph-state" / "state.sqlite",
                       "SQLite file the graph nodes share (recent history, live popularity, served answers, "
                       "feedback effect ledger): every worker process of every node of a pod sees it.", ("node:*",),
                       cluster="config", default_doc="`$SMARTRECO_RUNS/graph-state/state.sqlite`")
EVENTS_URL = _declare("SMARTRECO_EVENTS_URL", "url", None, "Event service the graph node that appends feedback "
                      "posts to (unset: feedback is applied but not logged, library/test use only).",
                      ("node:*",), cluster="config")
EVENTS_TIMEOUT_S = _declare("SMARTRECO_EVENTS_TIMEOUT_S", "float", 2.0, "Seconds a node waits for the event "
                            "service's durable feedback append.", ("node:*",), check=_not_negative)

STATE = _declare("SMARTRECO_STATE", "str", None, "Shared state of every replica, redis://HOST:PORT/DB: bandit "
                 "arm statistics, recent history, live popularity, served answers, the response cache and the event "
                 "log (a Redis stream) live there (unset: the local SQLite file and segment log).",
                 ("node:*", "event-service", "events-archive", "executor"), cluster="config", secret="smartreco-state",
                 default_doc="unset (local state)")
EVENTS_ARCHIVE = _declare("SMARTRECO_EVENTS_ARCHIVE", "path", lambda: RUNS.get() / "events-archive", "Folder of "
                          "the parquet files `smartreco events archive` moves the Redis event stream's oldest "
                          "records to (readers read it, then the stream).",
                          ("events-archive", "event-service", "pipeline-step", "cli"),
                          default_doc="`$SMARTRECO_RUNS/events-archive`")
EVENTS_RETENTION_S = _declare("SMARTRECO_EVENTS_RETENTION_S", "float", 86400.0, "Seconds a record stays in the "
                              "Redis event stream: each `smartreco events archive` run (the hourly CronJob) moves "
                              "older ones to the archive. 24 h = the local log's idempotency window (a retry within "
                              "it is answered duplicate); each record holds ~1.06 KiB of Redis "
                              "(benchmarks/results/graph_memory_redis.md).",
                              ("events-archive", "cli"), check=_not_negative)
EVENTS_MAX_ENTRIES = _declare("SMARTRECO_EVENTS_MAX_ENTRIES", "int", 20_000, "Backstop of the Redis event stream: "
                              "each archive run also moves all but the newest this many, whatever their age, so "
                              "the stream stays near 20,000 x ~1.06 KiB = ~21 MiB of Redis (plus one schedule "
                              "interval's new records) when traffic outruns the 24 h bound.",
                              ("events-archive", "cli"), check=_not_negative)

LOG_LEVEL = _declare("SMARTRECO_LOG_LEVEL", "str", "info", "Log level of the event service.", ("event-service",))

# ------------------------------------------------------------------------------ tracking / pipeline
MLFLOW_TRACKING_URI = _declare("MLFLOW_TRACKING_URI", "str", None, "MLflow tracking server / registry.",
                               ("pipeline-step", "init:model-fetch", "web", "cli"), cluster="config",
                               default_doc="sqlite db in `$SMARTRECO_RUNS/mlflow`")
KFP_HOST = _declare("KFP_HOST", "str", None, "Kubeflow Pipelines API the retrain step submits to (unset: run "
                    "locally).", ("pipeline-step",))

# ------------------------------------------------------------------------------------------ images
PIPELINE_IMAGE = _declare("SMARTRECO_PIPELINE_IMAGE", "str", lambda: f"smartreco-pipeline:{_version()}",
                          "Tag of the pipeline image (KFP base image, docker runner).", ("cli", "build"),
                          cluster="local", default_doc="`smartreco-pipeline:<version>`")
SERVING_IMAGE = _declare("SMARTRECO_SERVING_IMAGE", "str", lambda: f"smartreco-serving:{_version()}",
                         "Tag of the serving image (graph nodes, `serve --containers`).", ("cli", "build"),
                         cluster="local", default_doc="`smartreco-serving:<version>`")
DEBIAN_MIRROR = _declare("SMARTRECO_DEBIAN_MIRROR", "str", None, "Debian mirror URL image builds use.",
                         ("build",), cluster="local")
SOURCE_URL = _declare("SMARTRECO_SOURCE_URL", "str", None, "Source URL stamped into image labels.", ("build",),
                      cluster="local", default_doc="the git remote `origin`")
K8S_VERSION = _declare("SMARTRECO_K8S_VERSION", "str", "1.32.0", "Kubernetes version manifests are validated "
                       "against (manifests/tools/validate.py).", ("cli",), cluster="local")

# ----------------------------------------------------------------------------------------- scripts
DEMO_PORT = _declare("SMARTRECO_DEMO_PORT", "int", 8089, "Port of the graph `scripts/demo.sh` serves.",
                     ("scripts",), cluster="local")
DEMO_SAMPLE_USERS = _declare("SMARTRECO_DEMO_SAMPLE_USERS", "int", None, "Users `scripts/demo.sh` trains on "
                             "(a sample, for speed).", ("scripts",), cluster="local", default_doc="all users")
WEB_PORT = _declare("SMARTRECO_WEB_PORT", "int", 8080, "Port of the storefront `scripts/demo.sh` starts.",
                    ("scripts",), cluster="local")
FEAST_PORT = _declare("SMARTRECO_FEAST_PORT", "int", 6566, "Port of the feature server `scripts/demo.sh` starts.",
                      ("scripts",), cluster="local")
SERVICES_STARTED = _declare("SMARTRECO_SERVICES_STARTED", "path", None, "File `scripts/services.sh start` "
                            "appends the services it started to (so CI stops exactly those).", ("scripts",),
                            cluster="local")
RUNNER = _declare("SMARTRECO_RUNNER", "str", "auto", "Pipeline runner `scripts/demo.sh` uses "
                  "(auto|docker|subprocess).", ("scripts",), cluster="local")

# ------------------------------------------------------- set by our ConfigMaps, read by other tools
# Declared so the check "every name a ConfigMap sets is a name something reads" holds; ``reader`` says who.
_declare("MLFLOW_S3_ENDPOINT_URL", "str", None, "S3 endpoint of MLflow's artifact store.",
         ("mlflow", "init:model-fetch", "pipeline-step"), cluster="config", reader="mlflow")
_declare("MLFLOW_ARTIFACTS_DESTINATION", "str", None, "Where the MLflow server stores artifacts.",
         ("mlflow",), cluster="config", reader="mlflow")
_declare("FEAST_REGISTRY_PATH", "str", None, "Feast registry (expanded in the cluster's feature_store.yaml).",
         ("feast",), cluster="config", reader="feast")
_declare("HF_HUB_OFFLINE", "bool", None, "Hugging Face: never download (MiniLM ships in the image).",
         ("node:*", "pipeline-step"), cluster="config", reader="huggingface_hub")
_declare("HOME", "path", None, "Home folder of the node user (writable emptyDir).", ("node:*",), cluster="config",
         reader="os")
_declare("PREDICTIVE_UNIT_METRICS_ENDPOINT", "str", None, "Path the Seldon wrapper serves metrics on.",
         ("node:*",), cluster="config", reader="seldon-core")
_declare("GUNICORN_WORKERS", "int", None, "Seldon wrapper REST worker processes per node.", ("node:*",),
         cluster="config", reader="seldon-core")
_declare("GUNICORN_THREADS", "int", None, "Threads per Seldon wrapper REST worker.", ("node:*",), cluster="config",
         reader="seldon-core")
_declare("GRPC_WORKERS", "int", None, "Seldon wrapper gRPC worker processes per node.", ("node:*",), cluster="config",
         reader="seldon-core")
_declare("GUNICORN_KEEPALIVE", "int", None, "Seconds the Seldon wrapper keeps an idle REST connection open (2 "
         "unset): above the executor's idle-connection timeout, so the executor closes first and never sends a "
         "request on a connection the node is closing.", ("node:*",), cluster="config", reader="seldon-core")
SELDON_LOG_LEVEL = _declare("SELDON_LOG_LEVEL", "str", None, "Log level of the Seldon wrapper (the local executor "
                            "passes it on, WARNING when unset).", ("node:*", "executor"), cluster="config",
                            reader="seldon-core", default_doc="seldon-core's own (local executor: WARNING)")
_declare("REDIS_PASSWORD", "str", None, "Redis password (from the smartreco-redis Secret), expanded into "
         "the cluster's feature_store.yaml.", ("feast",), cluster="config", reader="feast")
_declare("AWS_ACCESS_KEY_ID", "str", None, "Object store (MinIO/S3) key id for MLflow artifacts.",
         ("mlflow", "init:model-fetch"), cluster="config", reader="boto3",
         secret="smartreco-object-store")
_declare("AWS_SECRET_ACCESS_KEY", "str", None, "Object store (MinIO/S3) secret key.",
         ("mlflow", "init:model-fetch"), cluster="config", reader="boto3",
         secret="smartreco-object-store")
PUSHGATEWAY_URL = _declare("SMARTRECO_PUSHGATEWAY_URL", "url", None, "Prometheus Pushgateway `smartreco drift "
                            "report` pushes smartreco_drift_share / smartreco_drift_detected{dataset} to (the "
                            "SmartRecoDriftDetected alert); unset: no push.", ("drift-job",), cluster="config")
_declare("OMP_NUM_THREADS", "int", None, "OpenMP threads per node process (1: a forked worker can hang "
         "otherwise, STACK_NOTES).", ("node:*",), cluster="config", reader="openmp")


def get(name: str) -> Any:
    """The parsed value of the declared variable ``name`` (KeyError for an undeclared one)."""
    return SETTINGS[name].get()


def check_all(names: list[str] | None = None) -> list[str]:
    """Parse every declared variable (or ``names``) that is set; the error messages, empty when all parse.
    Deployables call this at start-up to fail fast with every bad variable named."""
    problems = []
    for name in names or list(SETTINGS):
        try:
            SETTINGS[name].get()
        except SettingError as exc:
            problems.append(str(exc))
    return problems


def markdown_table() -> str:
    """The README's Configuration table (``python -m smartreco.settings --markdown``)."""
    rows = ["| Variable | Type | Default | Needed by | On a cluster | Read by | What |",
            "|---|---|---|---|---|---|---|"]
    for s in SETTINGS.values():
        needs = ", ".join(f"`{n}`" for n in s.needs)
        cells = [f"`{s.name}`", s.type, s.shown_default(), needs, s.cluster, s.reader, s.doc]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")  # a | ends a cell
    legend = "; ".join(f"**{k}**: {v}" for k, v in CLUSTER_WAYS.items())
    return "\n".join(rows) + f"\n\nOn a cluster: {legend}.\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m smartreco.settings", description=__doc__.split("\n")[0])
    parser.add_argument("--markdown", action="store_true", help="print the README Configuration table")
    parser.add_argument("--check", action="store_true", help="parse every set variable; exit 1 naming bad ones")
    args = parser.parse_args(argv)
    if args.check:
        problems = check_all()
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    if args.markdown:
        sys.stdout.write(markdown_table())
        return 0
    for s in SETTINGS.values():
        print(f"{s.name}={s.raw() if s.is_set() else ''}  # {s.type}, default {s.shown_default()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
