"""Image tags, defined once: components, manifests checks and `smartreco images build` all read these.

``pipeline_image()`` / ``serving_image()`` read ``SMARTRECO_PIPELINE_IMAGE`` / ``SMARTRECO_SERVING_IMAGE``
(smartreco.settings) when called; ``PIPELINE_IMAGE`` / ``SERVING_IMAGE`` are the same values, read when the
name is first looked up (module ``__getattr__``), for callers that need a constant (KFP's ``base_image``).
"""

from __future__ import annotations

from smartreco import settings


def pipeline_image() -> str:
    return settings.PIPELINE_IMAGE.get()


def serving_image() -> str:
    return settings.SERVING_IMAGE.get()


def __getattr__(name: str) -> str:
    if name == "PIPELINE_IMAGE":
        return pipeline_image()
    if name == "SERVING_IMAGE":
        return serving_image()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
