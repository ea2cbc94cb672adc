"""Local Seldon Core v1 graph executor: reads the SeldonDeployment, runs every node as a
``seldon-core-microservice`` process on loopback (or in-process, or as containers), starts the event
service next to them, and serves REST + gRPC. It keeps Seldon's executor semantics only (``engine.py``,
``request_logger.py``) plus an ingress gateway's duties (``gateway.py``); everything the product learns
from happens in the graph nodes (``tests/unit/test_executor_imports.py`` checks the imports)."""
