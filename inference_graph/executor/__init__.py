"""Local Seldon Core v1 graph executor: reads the SeldonDeployment, runs every node as a
``seldon-core-microservice`` process on loopback (or in-process), and serves REST + gRPC."""
