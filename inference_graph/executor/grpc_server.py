"""The executor's gRPC front: Seldon's own ``Seldon`` service (Predict, SendFeedback) on grpc.aio.

jsonData arrives as a protobuf Struct (every number a float; the schema accepts 42.0 as 42).
Validation errors become INVALID_ARGUMENT naming the field (the Python wrapper would give UNKNOWN).
An unexpected error is INTERNAL with a fixed message and an error id (the detail is logged only). With
a token configured, calls need metadata ``authorization: Bearer <token>`` (UNAUTHENTICATED otherwise).
"""

from __future__ import annotations

import logging
import time
import uuid

import grpc
from google.protobuf import json_format
from seldon_core.proto import prediction_pb2, prediction_pb2_grpc

from inference_graph.executor.auth import bearer_ok
from inference_graph.executor.engine import GraphEngine, GraphUnavailable
from inference_graph.executor.gateway import check_prediction, normalize_feedback
from inference_graph.executor.limits import check_depth
from inference_graph.executor.rest import public_reason
from inference_graph.executor.transport import NodeCallError
from smartreco.schema import RequestValidationError, check_message_meta

log = logging.getLogger(__name__)


def _to_proto(doc: dict) -> prediction_pb2.SeldonMessage:
    meta = dict(doc.get("meta") or {})
    meta.pop("metrics", None)
    return json_format.ParseDict(
        {**doc, "meta": meta}, prediction_pb2.SeldonMessage(), ignore_unknown_fields=True
    )


class SeldonServicer(prediction_pb2_grpc.SeldonServicer):
    def __init__(self, engine: GraphEngine, token: str | None = None) -> None:
        self.engine = engine
        self.token = token

    def _authorized(self, context) -> bool:
        if self.token is None:
            return True
        header = next((v for k, v in context.invocation_metadata() or () if k.lower() == "authorization"), None)
        return bearer_ok(header if isinstance(header, str) else None, self.token)

    async def _run(self, endpoint: str, request, context, fn):
        started = time.perf_counter()
        code = "OK"
        try:
            if not self._authorized(context):
                code = "UNAUTHENTICATED"
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, "authorization: missing or invalid bearer token")
            doc = json_format.MessageToDict(request)
            check_depth(doc)
            check_message_meta(doc)
            return _to_proto(await fn(doc))
        except RequestValidationError as exc:
            code = "INVALID_ARGUMENT"
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except (GraphUnavailable, NodeCallError) as exc:
            code = "UNAVAILABLE"
            log.warning("gRPC %s failed: %s", endpoint, exc)
            await context.abort(grpc.StatusCode.UNAVAILABLE, public_reason(exc))
        except Exception as exc:
            if isinstance(exc, grpc.aio.AbortError):
                raise
            code = "INTERNAL"
            error_id = uuid.uuid4().hex[:12]
            log.exception("gRPC %s crashed (error id %s)", endpoint, error_id)
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error (error id {error_id})")
        finally:
            m = self.engine.metrics
            m.requests.labels("grpc", endpoint, code).inc()
            m.request_seconds.labels("grpc", endpoint).observe(time.perf_counter() - started)

    async def _predict(self, message: dict) -> dict:
        return await self.engine.predict(check_prediction(message))

    async def _feedback(self, message: dict) -> dict:
        return await self.engine.feedback(normalize_feedback(message))

    async def Predict(self, request, context):  # noqa: N802 - gRPC method name
        return await self._run("predictions", request, context, self._predict)

    async def SendFeedback(self, request, context):  # noqa: N802
        return await self._run("feedback", request, context, self._feedback)


async def start_grpc(
    engine: GraphEngine, port: int, host: str = "127.0.0.1", token: str | None = None
) -> grpc.aio.Server:
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 4 << 20)])
    prediction_pb2_grpc.add_SeldonServicer_to_server(SeldonServicer(engine, token), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"grpc: cannot bind {host}:{port}")
    await server.start()
    return server
