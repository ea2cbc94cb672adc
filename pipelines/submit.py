"""Submit a pipeline to a Kubeflow Pipelines host with ``kfp.Client``: upload the pipeline (or a new
version of it), then create a run or a recurring run, and return its URL."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from smartreco.errors import SmartRecoError


@dataclass
class Submitted:
    pipeline_id: str
    version_id: str
    run_id: str
    url: str
    recurring: bool


def _pipeline_id(client, name: str) -> str | None:
    try:
        return client.get_pipeline_id(name)
    except Exception:  # noqa: BLE001 - older servers raise when absent
        return None


def submit(
    name: str,
    *,
    host: str,
    arguments: dict | None = None,
    experiment: str = "smartreco",
    schedule: str = "",
    version: str = "",
    namespace: str | None = None,
    client=None,
) -> Submitted:
    """Upload ``name`` (pipelines.compile registry) + a version, then run it (or schedule it with a cron
    ``schedule`` such as ``"0 0 3 * * *"``). ``client`` is injectable for tests."""
    from pipelines.compile import compile_pipeline, get_pipeline

    pipeline_name = get_pipeline(name).name
    if client is None:
        import kfp

        try:
            client = kfp.Client(host=host, namespace=namespace)
        except Exception as exc:  # noqa: BLE001 - connection errors become one line
            raise SmartRecoError(f"--host {host}: cannot reach Kubeflow Pipelines ({type(exc).__name__}: {exc})") \
                from None
    with tempfile.TemporaryDirectory() as tmp:
        package = str(compile_pipeline(name, Path(tmp)))
        version_name = version or time.strftime("v%Y%m%d-%H%M%S")
        pid = _pipeline_id(client, pipeline_name)
        if pid is None:
            pipeline = client.upload_pipeline(package, pipeline_name=pipeline_name)
            pid = pipeline.pipeline_id
        ver = client.upload_pipeline_version(package, pipeline_version_name=version_name, pipeline_id=pid)
    exp = client.create_experiment(experiment, namespace=namespace)
    job_name = f"{pipeline_name}-{version_name}"
    if schedule:
        job = client.create_recurring_run(experiment_id=exp.experiment_id, job_name=job_name, cron_expression=schedule,
                                          pipeline_id=pid, version_id=ver.pipeline_version_id, params=arguments or {})
        run_id = job.recurring_run_id
        url = f"{host.rstrip('/')}/#/recurringruns/details/{run_id}"
    else:
        run = client.run_pipeline(experiment_id=exp.experiment_id, job_name=job_name, pipeline_id=pid,
                                  version_id=ver.pipeline_version_id, params=arguments or {})
        run_id = run.run_id
        url = f"{host.rstrip('/')}/#/runs/details/{run_id}"
    return Submitted(pid, ver.pipeline_version_id, run_id, url, bool(schedule))
