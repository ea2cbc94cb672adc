"""What every component shares: the decorator that pins the pipeline image (defined once)."""

from __future__ import annotations

import functools

from kfp import dsl

from smartreco.images import PIPELINE_IMAGE

#: `@component` = `@dsl.component(base_image=PIPELINE_IMAGE)`: the compiled YAML runs on a cluster in
#: the project's image with no inline pip installs (``install_kfp_package=False``: kfp comes from the image too,
#: otherwise KFP prepends `pip install kfp==...` to every step's command).
component = functools.partial(dsl.component, base_image=PIPELINE_IMAGE, install_kfp_package=False)

__all__ = ["PIPELINE_IMAGE", "component"]
