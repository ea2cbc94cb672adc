"""Image tags, defined once: components, manifests checks and `smartreco images build` all read these."""

from __future__ import annotations

import os

from smartreco import __version__

PIPELINE_IMAGE = os.environ.get("SMARTRECO_PIPELINE_IMAGE", f"smartreco-pipeline:{__version__}")
SERVING_IMAGE = os.environ.get("SMARTRECO_SERVING_IMAGE", f"smartreco-serving:{__version__}")
