"""The executor's OpenAPI document: generated from the request models, committed current, and saying
exactly what the edge accepts (a body is schema-valid iff the executor's own checks take it)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from smartreco.schema import RecommendationRequest, RequestValidationError, check_message_meta, parse_or_raise
from smartreco.serving.openapi import executor_openapi, main

pytestmark = [pytest.mark.unit]

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_the_committed_document_is_the_generated_one(tmp_path):
    out = tmp_path / "openapi.json"
    assert main(["--out", str(out)]) == 0
    assert json.loads(DOC.read_text()) == json.loads(out.read_text()), (
        "docs/openapi.json is stale: python -m smartreco.serving.openapi --out docs/openapi.json")
    doc = executor_openapi()
    assert doc["openapi"].startswith("3.1") and {"/api/v1.0/predictions", "/api/v1.0/feedback"} <= set(doc["paths"])
    answers = doc["paths"]["/api/v1.0/predictions"]["post"]["responses"]
    assert {"200", "400", "503"} <= set(answers)


def _valid_per_document(body) -> bool:
    doc = executor_openapi()
    schema = {"$ref": "#/components/schemas/PredictionMessage", "components": doc["components"]}
    return jsonschema.Draft202012Validator(schema).is_valid(body)


def _accepted_by_the_edge(body) -> bool:
    """What the executor's gateway runs on a predictions body (meta, then the jsonData request)."""
    try:
        check_message_meta(body)
        if not isinstance(body, dict) or not isinstance(body.get("jsonData"), dict):
            return False
        parse_or_raise(RecommendationRequest, body["jsonData"])
    except RequestValidationError:
        return False
    return True


R = {"user_id": "7"}


@pytest.mark.parametrize(
    "body",
    [
        {"jsonData": R},
        {"jsonData": {"user_id": 42}},
        {"jsonData": {"user_id": True}},
        {"jsonData": {"user_id": ""}},
        {"jsonData": {"user_id": "u" * 257}},
        {"jsonData": {**R, "num_recommendations": 100}},
        {"jsonData": {**R, "num_recommendations": 101}},
        {"jsonData": {**R, "num_recommendations": "10"}},
        {"jsonData": {**R, "num_recommendations": 10.5}},
        {"jsonData": {**R, "include_explanation": "yes"}},
        {"jsonData": {**R, "exclude_items": [1, "2"]}},
        {"jsonData": {**R, "exclude_items": [None]}},
        {"jsonData": {**R, "context": {"hour": "5"}}},
        {"jsonData": {**R, "context": {"hour": 24}}},
        {"jsonData": {**R, "context": {"channel": "tv"}}},
        {"jsonData": {**R, "context": {"locale": "de", "app": {"v": 1}}}},
        {"jsonData": {**R, "context": {"k" * 65: 1}}},
        {"jsonData": {**R, "colour": "red"}},
        {"jsonData": {**R, "request_id": "r 1"}},
        {"jsonData": {**R, "request_id": "r" * 129}},
        {"jsonData": R, "meta": {"puid": "p-1"}},
        {"jsonData": R, "meta": {"puid": " p"}},
        {"jsonData": R, "meta": {"puid": 5}},
        {"jsonData": R, "meta": {"puid": "p" * 129}},
        {"jsonData": R, "meta": {"tags": {"a": 1}, "routing": {"ab-router": 1}}},
        {"jsonData": R, "meta": {"routing": {"ab-router": "1"}}},
        {"jsonData": R, "meta": {"colour": 1}},
        {"jsonData": R, "meta": []},
        {"jsonData": R, "strData": "passed over"},
        {"meta": {}},
        [R],
    ],
)
def test_the_document_says_what_the_edge_accepts(body):
    assert _valid_per_document(body) == _accepted_by_the_edge(body)
