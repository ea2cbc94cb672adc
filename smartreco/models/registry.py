"""Name -> factory of every evaluable model; the one list `smartreco evaluate` and the benchmarks use.

Factories are lazy ``"module:attribute"`` references so this module imports nothing heavy and a
model whose dependencies are missing (torch in the serving venv, say) fails only when asked for, with
:class:`ModelUnavailableError`. Adding a model is one line in :data:`MODEL_FACTORIES`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from smartreco.errors import SmartRecoError
from smartreco.models.base import Recommender


class UnknownModelError(SmartRecoError, ValueError):
    """A model name that is not registered."""


class ModelUnavailableError(SmartRecoError):
    """A registered model whose module cannot be imported here (missing dependency, not built yet)."""


def lazy(target: str) -> Callable[..., Recommender]:
    """A factory that imports ``"package.module:Class"`` on first call."""
    module_name, _, attr = target.partition(":")

    def factory(**params) -> Recommender:
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ModelUnavailableError(f"{target}: cannot import ({type(exc).__name__}: {exc})") from None
        return cls(**params)

    factory.target = target  # type: ignore[attr-defined]
    return factory


MODEL_FACTORIES: dict[str, Callable[..., Recommender]] = {
    "mostpop": lazy("smartreco.models.baselines:MostPopular"),
    "itemknn": lazy("smartreco.models.baselines:ItemKNN"),
    "ease": lazy("smartreco.models.baselines:EASE"),
    "als": lazy("smartreco.models.baselines:ALS"),
    "hybrid": lazy("smartreco.models.hybrid:HybridRanker"),
    # the standalone CF and CB exactly as the bundle serves them (smartreco.models.served: one recipe)
    "cf": lazy("smartreco.models.served:served_cf"),
    "cb": lazy("smartreco.models.served:served_cb"),
}

#: the peers every evaluation reports (ARCHITECTURE §5; smartreco.evaluation.evaluator.BASELINE_PEERS)
PEERS: tuple[str, ...] = ("mostpop", "itemknn", "ease", "als")


def model_names() -> list[str]:
    return list(MODEL_FACTORIES)


def get_model(name: str, **params) -> Recommender:
    """Build a registered model; unknown names raise :class:`UnknownModelError` listing the known ones."""
    try:
        factory = MODEL_FACTORIES[name]
    except KeyError:
        known = ", ".join(MODEL_FACTORIES)
        raise UnknownModelError(f"--models: unknown model {name!r} (known: {known})") from None
    return factory(**params)


def build_models(names: list[str] | None = None, *, warn: Callable[[str], None] = print
                 ) -> tuple[dict[str, Recommender], dict[str, str]]:
    """Instantiate ``names`` (default: all registered). Unknown names raise; models that cannot be
    imported are skipped with a printed warning and returned in ``skipped`` (name -> reason)."""
    names = names or model_names()
    for name in names:
        if name not in MODEL_FACTORIES:
            get_model(name)  # raises UnknownModelError
    models: dict[str, Recommender] = {}
    skipped: dict[str, str] = {}
    for name in names:
        try:
            models[name] = get_model(name)
        except ModelUnavailableError as exc:
            skipped[name] = str(exc)
            warn(f"WARNING: skipping model {name!r}: {exc}")
    return models, skipped
