"""The Starlette app of ``smartreco web``: storefront, experiments and model pages.

Every page is rendered on the server. The storefront asks the graph (Seldon REST) for the user's list
and sends feedback through the graph's feedback endpoint with the served answer's request id, so the
executor attributes it to that impression, updates the user's recent history and the router's reward,
and the next list reflects it. Bad input is a 400 page naming the field; an unreachable graph a 502
page saying where it looked.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from smartreco.serving import client

CHANNELS = ("web", "mobile")
ACTIONS = ("click", "like", "purchase")
#: ids as the graph accepts them (online_learning._id): short, printable, no separators we split on
_ID_RE = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")
MAX_N = 50


@dataclass(frozen=True)
class WebConfig:
    graph_url: str
    event_log: Path  # the segment log the graph's impressions and feedback are appended to
    drift_search: Path  # where the newest drift.json is looked for
    experiment: Path | None = None  # experiment.json (default: next to the event log)
    n: int = 10


class BadInput(ValueError):
    """A form/query field the user got wrong: a 400 page that names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _templates() -> Environment:
    env = Environment(loader=PackageLoader("smartreco.web", "templates"), autoescape=select_autoescape())
    env.filters["pct"] = lambda v, d=1: "n/a" if v is None else f"{v * 100:.{d}f}%"
    env.filters["num"] = lambda v, d=3: "n/a" if v is None else f"{v:.{d}g}"
    return env


def _id(value: str | None, field: str, required: bool = True) -> str | None:
    value = (value or "").strip()
    if not value:
        if required:
            raise BadInput(field, "required")
        return None
    if not _ID_RE.match(value):
        raise BadInput(field, "letters, digits and _ . : @ - only, at most 128 characters")
    return value


def _channel(value: str | None) -> str:
    value = (value or "web").strip()
    if value not in CHANNELS:
        raise BadInput("channel", f"must be one of {', '.join(CHANNELS)}")
    return value


def _exclude(value: str | None) -> list[str]:
    items = [v.strip() for v in (value or "").split(",") if v.strip()]
    for v in items:
        _id(v, "exclude")
    if len(items) > 200:
        raise BadInput("exclude", "at most 200 item ids")
    return items


def _n(value: str | None, default: int) -> int:
    if value in (None, ""):
        return default
    try:
        n = int(value)
    except ValueError:
        raise BadInput("n", "must be a whole number") from None
    if not 1 <= n <= MAX_N:
        raise BadInput("n", f"must be within 1..{MAX_N}")
    return n


def request_id_of(answer: dict) -> str | None:
    """The graph's id of a served answer: ``meta.tags.request_id`` (the contract), else ``meta.puid``."""
    meta = answer.get("meta") or {}
    return (meta.get("tags") or {}).get("request_id") or meta.get("puid")


def shown(answer: dict) -> dict[str, Any]:
    """What the storefront shows of one graph answer (and posts back with a feedback)."""
    data = answer.get("jsonData") or {}
    recs = []
    for r in data.get("recommendations") or []:
        cats = [c for c in re.split(r"[|,]", str(r.get("category") or "")) if c]
        recs.append({**r, "categories": cats})
    return {
        "recommendations": recs,
        "variant": data.get("variant"),
        "model_version": data.get("model_version"),
        "cold_start": bool(data.get("cold_start")),
        "request_id": request_id_of(answer),
        "routing": (answer.get("meta") or {}).get("routing"),
    }


def create_app(cfg: WebConfig) -> Starlette:
    env = _templates()

    def page(name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        return HTMLResponse(env.get_template(name).render(cfg=cfg, **ctx), status_code=status)

    def problem(status: int, title: str, message: str, active: str = "") -> HTMLResponse:
        return page("problem.html", status, title=title, message=message, active=active)

    def state(params: Any) -> dict[str, Any]:
        return {
            "user": _id(params.get("user"), "user", required=False),
            "channel": _channel(params.get("channel")),
            "exclude": _exclude(params.get("exclude")),
            "n": _n(params.get("n"), cfg.n),
        }

    def storefront_url(st: dict[str, Any], **extra: str) -> str:
        q = {"user": st["user"], "channel": st["channel"], "n": st["n"], **extra}
        if st["exclude"]:
            q["exclude"] = ",".join(st["exclude"])
        return "/?" + urlencode(q)

    def recommend(st: dict[str, Any]) -> dict[str, Any]:
        answer = client.recommend(st["user"], st["n"], st["channel"], st["exclude"], True, cfg.graph_url)
        return shown(answer)

    async def storefront(request: Request) -> Response:
        try:
            if request.query_params.get("new"):
                st = state({**request.query_params, "user": f"guest-{secrets.token_hex(4)}"})
                return RedirectResponse(storefront_url(st), status_code=303)
            st = state(request.query_params)
        except BadInput as exc:
            return problem(400, "Bad request", str(exc), "store")
        answer, error = None, None
        if st["user"]:
            try:
                answer = recommend(st)
            except client.GraphClientError as exc:
                error = str(exc)
        partial = request.headers.get("x-partial") == "recs"
        ctx = {"st": st, "answer": answer, "error": error, "notice": request.query_params.get("notice"),
               "active": "store", "actions": ACTIONS, "channels": CHANNELS}
        status = 502 if error else 200
        return page("_recs.html" if partial else "storefront.html", status, **ctx)

    async def feedback(request: Request) -> Response:
        form = await request.form()
        try:
            st = state(form)
            if st["user"] is None:
                raise BadInput("user", "required")
            item = _id(form.get("item"), "item")
            action = str(form.get("action") or "")
            if action not in ACTIONS:
                raise BadInput("action", f"must be one of {', '.join(ACTIONS)}")
            rid = _id(form.get("request_id"), "request_id", required=False)
        except BadInput as exc:
            return problem(400, "Bad request", str(exc), "store")
        served = {"user_id": st["user"]}
        for key in ("variant", "model_version"):
            if form.get(key):
                served[key] = str(form.get(key))
        response = {"meta": {"puid": rid, "tags": {"request_id": rid}}, "jsonData": served} if rid else None
        try:
            ack = client.feedback(st["user"], item, action, response=response, url=cfg.graph_url)
        except client.GraphClientError as exc:
            return problem(502, "Feedback not recorded", str(exc), "store")
        tags = (ack.get("meta") or {}).get("tags") or {}
        notice = f"{action} on item {item} recorded" + (" (already recorded)" if tags.get("duplicate") else "")
        if request.headers.get("x-partial") != "recs":
            return RedirectResponse(storefront_url(st, notice=notice), status_code=303)
        try:
            answer, error = recommend(st), None
        except client.GraphClientError as exc:
            answer, error = None, str(exc)
        return page("_recs.html", 502 if error else 200, st=st, answer=answer, error=error, notice=notice,
                    actions=ACTIONS)

    async def experiments(request: Request) -> Response:  # noqa: ARG001
        from smartreco.web.experiments import experiment_view

        return page("experiments.html", view=experiment_view(cfg.event_log, cfg.experiment), active="experiments")

    async def model(request: Request) -> Response:  # noqa: ARG001
        from smartreco.web.model_info import model_view

        return page("model.html", view=model_view(cfg.drift_search), active="model")

    async def ping(request: Request) -> Response:  # noqa: ARG001
        return PlainTextResponse("pong")

    static = StaticFiles(directory=str(Path(__file__).parent / "static"))
    return Starlette(
        routes=[
            Route("/", storefront),
            Route("/feedback", feedback, methods=["POST"]),
            Route("/experiments", experiments),
            Route("/model", model),
            Route("/health/ping", ping),
            Mount("/static", static, name="static"),
        ]
    )
