"""The executor's gRPC front: Seldon's own ``Seldon`` service (Predict, SendFeedback) on grpc.aio.

jsonData arrives as a protobuf Struct (every number a float; the schema accepts 42.0 as 42).
Validation errors become INVALID_ARGUMENT naming the field (the Python wrapper would give UNKNOWN).
"""

from __future__ import annotations

import logging
import time

import grpc
from google.protobuf import json_format
from seldon_core.proto import prediction_pb2, prediction_pb2_grpc

from inference_graph.executor.engine import GraphEngine, GraphUnavailable
from inference_graph.executor.transport import NodeCallError
from smartreco.schema import RequestValidationError

log = logging.getLogger(__name__)


def _to_proto(doc: dict) -> prediction_pb2.SeldonMessage:
    meta = dict(doc.get("meta") or {})
    meta.pop("metrics", None)
    return json_format.ParseDict(
        {**doc, "meta": meta}, prediction_pb2.SeldonMessage(), ignore_unknown_fields=True
    )


class SeldonServicer(prediction_pb2_grpc.SeldonServicer):
    def __init__(self, engine: GraphEngine) -> None:
        self.engine = engine

    async def _run(self, endpoint: str, request, context, fn):
        started = time.perf_counter()
        code = "OK"
        try:
            doc = json_format.MessageToDict(request)
            return _to_proto(await fn(doc))
        except RequestValidationError as exc:
            code = "INVALID_ARGUMENT"
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except (GraphUnavailable, NodeCallError) as exc:
            code = "UNAVAILABLE"
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        except Exception as exc:
            if isinstance(exc, grpc.aio.AbortError):
                raise
            code = "INTERNAL"
            log.exception("gRPC %s crashed", endpoint)
            await context.abort(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")
        finally:
            m = self.engine.metrics
            m.requests.labels("grpc", endpoint, code).inc()
            m.request_seconds.labels("grpc", endpoint).observe(time.perf_counter() - started)

    async def Predict(self, request, context):  # noqa: N802 - gRPC method name
        return await self._run("predictions", request, context, self.engine.predict)

    async def SendFeedback(self, request, context):  # noqa: N802
        return await self._run("feedback", request, context, self.engine.feedback)


async def start_grpc(engine: GraphEngine, port: int, host: str = "127.0.0.1") -> grpc.aio.Server:
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 4 << 20)])
    prediction_pb2_grpc.add_SeldonServicer_to_server(SeldonServicer(engine), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"grpc: cannot bind {host}:{port}")
    await server.start()
    return server
