"""Container images for real: find a Docker engine, bootstrap base images where no registry answers,
build the pipeline and serving images from a wheelhouse, and skip a build whose inputs did not change.

Modules: `engine` (is a Docker engine answering?), `spec` (the two images, defined once),
`requirements` (pins read from pyproject.toml extras), `base` (official or debootstrapped base),
`wheelhouse` (wheels built for the image's exact Python), `build` (content hash label, docker build).
"""

from smartreco.containers.build import BuildResult, build_images
from smartreco.containers.engine import EngineError, engine_problem
from smartreco.containers.spec import IMAGES, ImageSpec

__all__ = ["IMAGES", "BuildResult", "EngineError", "ImageSpec", "build_images", "engine_problem"]
