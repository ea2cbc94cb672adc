"""The OpenAPI document of the executor's REST API (Seldon's external API plus our fields), generated from
the pydantic models that validate requests (:mod:`smartreco.schema`), so the document cannot drift from
what the executor accepts and answers.

Seldon's ``SeldonMessage`` envelope is described for this graph: a prediction carries ``jsonData`` (a
:class:`~smartreco.schema.RecommendationRequest`) and optionally ``meta`` (:class:`~smartreco.schema.SeldonMeta`);
the answer carries the :class:`~smartreco.schema.RecommendationResponse` and the walk's ``meta``. A
client's mistake is a 400 in Seldon's status shape naming the field. ``python -m smartreco.serving.openapi
--out docs/openapi.json`` writes it; ``tests/unit/test_serving_openapi.py`` keeps the committed copy current
and ``tests/integration/test_executor_openapi_fuzz.py`` fuzzes the executor against it (schemathesis).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from smartreco import __version__
from smartreco.schema import (
    MAX_RECOMMENDATIONS,
    RecommendationRequest,
    RecommendationResponse,
    SeldonMeta,
)

REF = "#/components/schemas/{model}"
PATH_PREFIXES = ("/api/v1.0", "/api/v0.1")


class PredictionMessage(BaseModel):
    """A predictions request: Seldon's SeldonMessage with this graph's ``jsonData``. Other message fields
    (``data``, ``strData``, ...) are passed over, so the envelope is open; what is inside is strict."""

    model_config = ConfigDict(extra="allow")

    jsonData: RecommendationRequest  # noqa: N815 - Seldon's field name
    meta: SeldonMeta | None = None


class PredictionAnswer(BaseModel):
    """A prediction's answer: the recommendations and the graph walk's ``meta`` (puid, routing, tags)."""

    model_config = ConfigDict(extra="forbid")

    jsonData: RecommendationResponse  # noqa: N815
    meta: SeldonMeta


class FeedbackMessage(BaseModel):
    """Seldon's Feedback: the request and the answer it is about, a reward, and what the user did."""

    model_config = ConfigDict(extra="allow")

    request: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    reward: float = Field(default=0.0, ge=0.0, le=100.0)
    truth: dict[str, Any] | None = None


class FeedbackAnswer(BaseModel):
    model_config = ConfigDict(extra="allow")

    meta: dict[str, Any] = Field(default_factory=dict)


class StatusBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: int
    info: str = Field(description="what was wrong; a 400 starts with the dotted name of the bad field")
    reason: str
    status: str


class Status(BaseModel):
    """Seldon's error shape (400 BAD_REQUEST, 401 UNAUTHENTICATED, 403 FORBIDDEN, 415 UNSUPPORTED_MEDIA_TYPE,
    421 MISDIRECTED, 503 GRAPH_UNAVAILABLE, 500 INTERNAL_ERROR)."""

    model_config = ConfigDict(extra="forbid")

    status: StatusBody


_MODELS: list[tuple[type[BaseModel], str]] = [
    (PredictionMessage, "validation"),
    (PredictionAnswer, "serialization"),
    (FeedbackMessage, "validation"),
    (FeedbackAnswer, "serialization"),
    (Status, "serialization"),
]


def _json(ref: str) -> dict:
    return {"application/json": {"schema": {"$ref": REF.format(model=ref)}}}


def _errors(*codes: int) -> dict:
    text = {400: "a client mistake, naming the field", 401: "missing or wrong bearer token (auth on)",
            403: "a cross-site Origin not in SMARTRECO_CORS_ORIGINS",
            415: "Content-Type neither application/json nor a form with a json field",
            421: "a Host that is neither loopback nor in SMARTRECO_ALLOWED_HOSTS",
            503: "the graph cannot answer (a node down or past its timeout): retry after Retry-After seconds",
            500: "unexpected; the log has the error id"}
    out = {str(c): {"description": text[c], "content": _json("Status")} for c in codes}
    if 503 in codes:
        out["503"]["headers"] = {"Retry-After": {"description": "seconds to wait before retrying (same id)",
                                                 "schema": {"type": "integer", "minimum": 1}}}
    return out


def executor_openapi() -> dict[str, Any]:
    """The document (OpenAPI 3.1); deterministic, so a committed copy can be compared byte for byte."""
    _, defs = models_json_schema(_MODELS, ref_template=REF)
    paths: dict[str, Any] = {}
    for prefix in PATH_PREFIXES:
        paths[f"{prefix}/predictions"] = {
            "post": {
                "operationId": f"predict{'' if prefix == PATH_PREFIXES[0] else '_v01'}",
                "summary": f"Recommendations for one user (at most {MAX_RECOMMENDATIONS})",
                "requestBody": {"required": True, "content": _json("PredictionMessage")},
                "responses": {"200": {"description": "the answer", "content": _json("PredictionAnswer")},
                              **_errors(400, 401, 403, 415, 421, 503)},
            }
        }
        paths[f"{prefix}/feedback"] = {
            "post": {
                "operationId": f"feedback{'' if prefix == PATH_PREFIXES[0] else '_v01'}",
                "summary": "Feedback on an answer (acknowledged once durable; a retry with the same id is safe)",
                "requestBody": {"required": True, "content": _json("FeedbackMessage")},
                "responses": {"200": {"description": "acknowledged", "content": _json("FeedbackAnswer")},
                              **_errors(400, 401, 403, 415, 421, 503)},
            }
        }
    paths["/health/ping"] = {"get": {"operationId": "ping", "responses": {"200": {
        "description": "the executor runs", "content": {"text/plain": {"schema": {"type": "string"}}}}}}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "SmartReco inference graph (executor REST API)",
            "version": __version__,
            "description": "Seldon Core v1's external API as this graph uses it. Generated by "
            "smartreco.serving.openapi from the request models; do not edit by hand.",
        },
        "paths": paths,
        "components": {"schemas": defs["$defs"]},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m smartreco.serving.openapi", description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="write here (default: stdout)")
    args = ap.parse_args(argv)
    text = json.dumps(executor_openapi(), indent=2, sort_keys=True) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
