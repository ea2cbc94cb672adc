"""Per-step task settings shared by the three pipelines: caching, retries, resources, display name."""

from __future__ import annotations

from kfp import dsl

#: first retry after 5 s, then 10 s: a blip passes, a real error (also retried) costs 15 s, not minutes
BACKOFF = ("5s", 2.0)


def configure_task(
    task: dsl.PipelineTask,
    step: str,
    resources: dict[str, tuple[str, str, str, str]],
    *,
    cache: bool = True,
    retries: int = 0,
) -> dsl.PipelineTask:
    """Apply ``resources[step]`` (cpu request/limit, memory request/limit), caching and retries to ``task``."""
    task.set_caching_options(enable_caching=cache)
    if retries:
        task.set_retry(num_retries=retries, backoff_duration=BACKOFF[0], backoff_factor=BACKOFF[1])
    cpu_req, cpu_lim, mem_req, mem_lim = resources[step]
    task.set_cpu_request(cpu_req).set_cpu_limit(cpu_lim)
    task.set_memory_request(mem_req).set_memory_limit(mem_lim)
    task.set_display_name(step)
    return task
