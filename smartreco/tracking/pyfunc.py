"""MLflow pyfunc over a serving bundle: ``models:/smartreco-hybrid@champion`` scores like the bundle.

Logged from this code file (``code_paths``) with an explicit ``signature`` and no ``input_example``
(STACK_NOTES: an input example makes MLflow call ``load_context`` on the live object). The model
holds no Python state beyond its ``kind``; everything is in the bundle artifact, verified on load.

Input: one row per request, columns ``user_id`` (str), ``history`` (JSON list of item ids, may be
empty), ``n`` (int), optional ``exclude`` (JSON list), ``channel``, ``device_type``, ``hour``.
Output: one row per recommendation: ``user_id, item_id, score, rank`` (+ ``confidence`` and
``because_item`` for the hybrid).
"""

from __future__ import annotations

import json

import mlflow.pyfunc
import pandas as pd

KINDS = ("cf", "cb", "hybrid")


def _json_list(value: object) -> list[str]:
    if value is None or (isinstance(value, float) and value != value):
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    text = str(value).strip()
    if not text:
        return []
    return [str(v) for v in json.loads(text)]


class BundlePyfunc(mlflow.pyfunc.PythonModel):
    """``kind`` picks the API: cf -> cf_candidates, cb -> cb_candidates, hybrid -> rank."""

    def __init__(self, kind: str = "hybrid") -> None:
        if kind not in KINDS:
            raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
        self.kind = kind
        self.bundle = None

    def load_context(self, context) -> None:
        from smartreco.serving.bundle import ModelBundle

        self.bundle = ModelBundle.load(context.artifacts["bundle"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        rows = []
        for rec in model_input.to_dict(orient="records"):
            user = None if rec.get("user_id") in (None, "") else str(rec["user_id"])
            history = _json_list(rec.get("history"))
            exclude = set(_json_list(rec.get("exclude")))
            n = int(rec.get("n") or 10)
            if self.kind == "cf":
                got = self.bundle.cf_candidates(user, history, n, exclude)
            elif self.kind == "cb":
                got = self.bundle.cb_candidates(history, n, exclude)
            else:
                ctx = {k: rec.get(k) for k in ("channel", "device_type", "hour") if rec.get(k) is not None}
                ranked = self.bundle.rank(user, history, None, None, ctx, n, exclude)
                rows += [{"user_id": user, "item_id": r.item_id, "score": r.score, "rank": r.rank,
                          "confidence": r.confidence, "because_item": r.because_item or ""} for r in ranked]
                continue
            rows += [{"user_id": user, "item_id": i, "score": s, "rank": k}
                     for k, (i, s) in enumerate(got.items(), start=1)]
        return pd.DataFrame(rows, columns=output_columns(self.kind))


def output_columns(kind: str) -> list[str]:
    base = ["user_id", "item_id", "score", "rank"]
    return base + ["confidence", "because_item"] if kind == "hybrid" else base


def signature(kind: str):
    """Explicit input/output schema (no input example needed)."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    inputs = Schema([
        ColSpec("string", "user_id"), ColSpec("string", "history"), ColSpec("long", "n"),
        ColSpec("string", "exclude", required=False), ColSpec("string", "channel", required=False),
        ColSpec("string", "device_type", required=False), ColSpec("long", "hour", required=False),
    ])
    out = [ColSpec("string", "user_id"), ColSpec("string", "item_id"), ColSpec("double", "score"),
           ColSpec("long", "rank")]
    if kind == "hybrid":
        out += [ColSpec("double", "confidence"), ColSpec("string", "because_item")]
    return ModelSignature(inputs=inputs, outputs=Schema(out))
