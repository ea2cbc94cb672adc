"""The pace of a predictor rollout (pure): how many new pods ``rehearse apply`` may start and how many old pods it
may take out at each step, as the Deployment controller does for the Deployment the Seldon operator makes.

Why: starting every new pod at once (what ``apply`` did before) is not what a cluster does, and on a small
machine it starves the old pods until their readiness probes fail. seldon-core 1.x's operator
(``operator/controllers/seldondeployment_controller.go``) creates each predictor Deployment with
``Strategy: RollingUpdate{MaxUnavailable: "10%"}`` and no ``maxSurge``, which the API server defaults to 25%.
Kubernetes resolves the two against the replica count (``ResolveFenceposts`` in
``pkg/controller/deployment/util/deployment_util.go``): a percent surge rounds up, a percent unavailable rounds
down, and when both come to 0 the unavailable one becomes 1 (so a rollout can always move). For 2 replicas that is
surge 1, unavailable 0: one new pod at a time, never fewer than 2 ready.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: what the Seldon operator sets on each predictor Deployment
SELDON_MAX_UNAVAILABLE = "10%"
#: the apps/v1 default for an unset maxSurge (the operator leaves it unset)
DEFAULT_MAX_SURGE = "25%"


def _scaled(value: int | str, replicas: int, round_up: bool) -> int:
    """An IntOrString against ``replicas`` (``intstr.GetScaledValueFromIntOrPercent``): an int as it is, ``"N%"``
    as N% of the replicas, rounded up or down."""
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if not text.endswith("%"):
        return int(text)
    exact = int(text[:-1]) * replicas / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def fenceposts(
    replicas: int, max_surge: int | str = DEFAULT_MAX_SURGE, max_unavailable: int | str = SELDON_MAX_UNAVAILABLE
) -> tuple[int, int]:
    """(surge, unavailable) as ``ResolveFenceposts`` gives them: pods above ``replicas`` a rollout may add, and
    pods below it it may go to."""
    surge = _scaled(max_surge, replicas, round_up=True)
    unavailable = _scaled(max_unavailable, replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


@dataclass(frozen=True)
class Step:
    """What to do now: start ``start`` new pods, take ``remove`` old ones out (Service first, then stop)."""

    start: int
    remove: int


def next_step(replicas: int, surge: int, unavailable: int, old: int, new_started: int, new_ready: int) -> Step:
    """One pass of the controller's rolling update (scale the new ReplicaSet up, then the old one down), counting
    the old pods as available (they were serving) and a new pod only once it is ready and in its Service.

    ``old``: old pods still there; ``new_started``: new pods started so far (ready or not); ``new_ready``: of
    those, ready and in the Service. Returns ``Step(0, 0)`` when nothing may move until a started pod is ready,
    and also when the rollout is done (no old pod, every new pod started)."""
    start = max(0, min(replicas - new_started, replicas + surge - (old + new_started)))
    available = old + new_ready
    remove = max(0, min(old, available - (replicas - unavailable)))
    return Step(start, remove)


def plan_steps(replicas: int, old: int, surge: int, unavailable: int) -> list[Step]:
    """The whole rollout when every started pod becomes ready before the next step (what ``rehearse apply``
    does: it waits for the started batch): the sequence of steps, for the log and the tests."""
    steps: list[Step] = []
    new_started = new_ready = 0
    while old or new_started < replicas:
        step = next_step(replicas, surge, unavailable, old, new_started, new_ready)
        if step == Step(0, 0):
            if new_ready < new_started:  # wait for the started ones, then look again
                new_ready = new_started
                continue
            raise ValueError(f"a rollout of {replicas} from {old} with surge {surge}, unavailable {unavailable} stalls")
        steps.append(step)
        old -= step.remove
        new_started += step.start
    return steps
