"""Online learning without a retrain: what a feedback message says, read the same way by every node.

The parsing helpers (truth, interaction, feedback id) and the history merge live here; the effects
(recent history, live popularity, the user's cache generation) are applied by the graph nodes on a
state every worker process shares (``smartreco/serving/graph_state.py``,
``smartreco/serving/graph_feedback.py``). Stdlib only: this runs in the serving venv.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from smartreco.data import columns as C
from smartreco.schema import RequestValidationError

#: key of the executor → FeatureTransformer block inside the request jsonData
ONLINE_KEY = "online"
#: feedback types that are not a canonical interaction: logged as a bare reward, no history change
NON_INTERACTIONS = frozenset({"ignore"})
#: types that do not enter the recent history (the item was only shown)
NOT_HISTORY = frozenset({"view"})


@dataclass(frozen=True)
class Interaction:
    """The user action a feedback message carries in its ``truth``."""

    user_id: str
    item_id: str
    interaction_type: str

    @property
    def weight(self) -> float:
        return C.INTERACTION_WEIGHTS.get(self.interaction_type, 0.0)


def _id(value: Any, where: str) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # gRPC Struct numbers arrive as floats
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value).strip() == "":
        raise RequestValidationError(f"{where}: must be a non-empty string or integer id", where)
    if len(str(value)) > 128:
        raise RequestValidationError(f"{where}: longer than 128 characters", where)
    return str(value).strip()


def truth_of(message: dict) -> dict:
    """The feedback's truth as a plain dict (Seldon wraps it as a SeldonMessage ``{"jsonData": ...}``)."""
    truth = message.get("truth")
    if truth is None:
        return {}
    if not isinstance(truth, dict):
        raise RequestValidationError("truth: must be an object {item_id, interaction_type}", "truth")
    inner = truth.get("jsonData", truth)
    if not isinstance(inner, dict):
        raise RequestValidationError("truth.jsonData: must be an object {item_id, interaction_type}", "truth")
    return inner


def interaction_of(user_id: str | None, truth: dict) -> Interaction | None:
    """The interaction in ``truth`` (None for a bare reward); a 400 naming the bad field otherwise."""
    if not truth or truth.get(C.ITEM_ID) is None:
        return None
    item = _id(truth[C.ITEM_ID], "truth.item_id")
    itype = truth.get(C.INTERACTION_TYPE)
    if itype is None:
        raise RequestValidationError("truth.interaction_type: required with truth.item_id", "truth.interaction_type")
    allowed = (*C.INTERACTION_TYPES, *sorted(NON_INTERACTIONS))
    if itype not in allowed:
        raise RequestValidationError(
            f"truth.interaction_type: {itype!r} is not one of {', '.join(allowed)}", "truth.interaction_type"
        )
    if user_id is None:
        raise RequestValidationError("request.jsonData.user_id: required with truth.item_id", "request.jsonData")
    return Interaction(str(user_id), item, str(itype))


def feedback_id_of(message: dict, truth: dict, puid: str | None, interaction: Interaction | None) -> str:
    """The idempotency key: the client's id (top-level ``feedback_id`` or ``truth.feedback_id``, the
    only place a gRPC Feedback can carry it); else derived from the served response's puid and the
    action, so a blind retry of the same click on the same answer is still recognised; else a fresh id
    (returned to the client, which retries with it)."""
    given = message.get("feedback_id", truth.get("feedback_id"))
    if given is not None:
        return _id(given, "feedback_id")
    if puid and interaction is not None:
        return f"fb-{uuid.uuid5(uuid.NAMESPACE_URL, f'{puid}|{interaction.item_id}|{interaction.interaction_type}')}"
    return f"fb-{uuid.uuid4()}"


def merge_history(overlay: list[str], stored: list[str], limit: int) -> list[str]:
    """Overlay first (it is newer than anything the store has), then the store's, without repeats."""
    seen: set[str] = set()
    out: list[str] = []
    for item in (*overlay, *stored):
        item = str(item)
        if item not in seen:
            seen.add(item)
            out.append(item)
            if len(out) >= limit:
                break
    return out
