"""Kubeflow pipelines: training (ingest -> deploy), drift monitoring, batch (email); local run, compile, submit."""
