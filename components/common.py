"""What every component shares: the decorator that pins the pipeline image (defined once)."""

from __future__ import annotations

import functools

from kfp import dsl

from smartreco.images import PIPELINE_IMAGE

#: `@component` = `@dsl.component(base_image=PIPELINE_IMAGE)`: the compiled YAML runs on a cluster in
#: the project's image with no inline pip installs.
component = functools.partial(dsl.component, base_image=PIPELINE_IMAGE)

__all__ = ["PIPELINE_IMAGE", "component"]
