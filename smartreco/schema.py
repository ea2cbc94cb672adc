"""Pydantic models of the public contracts: canonical records and the recommendation API.

These are the shapes the REST/gRPC executor, the CLI and the feedback log accept; a validation
error names the field (``num_recommendations: must be <= 100``) and becomes HTTP 400 /
INVALID_ARGUMENT at the edge. Every model is strict (an unknown field is an error, so a typo never
vanishes silently) except :class:`RequestContext`, which channel clients fill with whatever they know:
its unknown keys are accepted, bounded, and named back in the answer's ``meta.tags``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from smartreco.data.columns import CHANNELS, INTERACTION_TYPES
from smartreco.errors import SmartRecoError

InteractionType = Literal["view", "click", "add_to_cart", "purchase", "like", "share", "rating"]
Channel = Literal["web", "mobile", "email"]
assert set(InteractionType.__args__) == set(INTERACTION_TYPES)  # one list, two spellings
assert set(Channel.__args__) == set(CHANNELS)

#: the documented maximum list length: each recommendation costs candidates and an explanation
MAX_RECOMMENDATIONS = 100
MAX_EXCLUDED_ITEMS = 10_000
#: a request id (Seldon's ``meta.puid``) becomes a log id and a routing key: bounded, printable ASCII
MAX_REQUEST_ID_CHARS = 128
REQUEST_ID_PATTERN = r"^[\x21-\x7e]*$"
MAX_CONTEXT_EXTRA_KEYS = 32
MAX_META_TAGS = 64


def _id_json_schema(schema: dict[str, Any]) -> None:
    """What ``_strict_id`` accepts, for the OpenAPI document: a 1-256 character string or an integer."""
    schema.clear()
    schema["anyOf"] = [{"type": "string", "minLength": 1, "maxLength": 256}, {"type": "integer"}]


_ID = Field(min_length=1, max_length=256, json_schema_extra=_id_json_schema)
#: a string taken as sent: no whitespace stripping, so a pattern means what it says
_RequestId = Annotated[
    str, StringConstraints(strip_whitespace=False, max_length=MAX_REQUEST_ID_CHARS, pattern=REQUEST_ID_PATTERN)
]


class RequestValidationError(SmartRecoError, ValueError):
    """A request that breaks the contract; ``field`` is the dotted path of the first bad field."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def _strict_id(value: Any) -> str:
    # gRPC Struct turns numbers into floats: accept 42 and 42.0 as "42", reject 42.5, bools, objects
    if isinstance(value, bool) or value is None:
        raise ValueError("must be a string or an integer id")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be a string or an integer id")
        value = int(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    raise ValueError("must be a string or an integer id")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class User(_Model):
    user_id: str = _ID
    registration_date: datetime | None = None
    age_group: str | None = None
    gender: str | None = None
    location: str | None = None
    subscription_tier: str | None = None

    _id = field_validator("user_id", mode="before")(_strict_id)


class Item(_Model):
    item_id: str = _ID
    title: str
    category: str
    subcategory: str | None = None
    brand: str | None = None
    price: float | None = Field(default=None, ge=0)
    tags: list[str] = Field(default_factory=list)
    description: str | None = None
    created_date: datetime | None = None

    _id = field_validator("item_id", mode="before")(_strict_id)


class Interaction(_Model):
    user_id: str = _ID
    item_id: str = _ID
    interaction_type: InteractionType
    timestamp: datetime
    session_id: str | None = None
    channel: Channel = "web"
    device_type: str | None = None
    rating: float | None = Field(default=None, ge=0.5, le=5.0)
    duration: float | None = Field(default=None, ge=0)

    _ids = field_validator("user_id", "item_id", mode="before")(_strict_id)

    @field_validator("timestamp")
    @classmethod
    def _not_in_future(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        if value > datetime.now(UTC):
            raise ValueError("must not be in the future")
        return value


class RequestContext(_Model):
    """What the channel knows about the request. Open: unknown keys are kept (at most
    ``MAX_CONTEXT_EXTRA_KEYS``, names up to 64 chars) and listed by :meth:`unknown_keys` so the answer
    can name them in ``meta.tags``; the known keys are checked as strictly as everywhere else."""

    model_config = ConfigDict(
        extra="allow",
        str_strip_whitespace=True,
        strict=True,  # JSON types as sent: "5" is not an hour (the OpenAPI document says integer)
        json_schema_extra={"maxProperties": MAX_CONTEXT_EXTRA_KEYS + 4, "propertyNames": {"maxLength": 64}},
    )

    channel: Channel = "web"
    device_type: str | None = Field(default=None, max_length=64)
    hour: int | None = Field(default=None, ge=0, le=23)
    session_id: str | None = Field(default=None, max_length=256)

    @model_validator(mode="after")
    def _bounded_extras(self) -> RequestContext:
        extra = self.model_extra or {}
        if len(extra) > MAX_CONTEXT_EXTRA_KEYS:
            raise ValueError(f"at most {MAX_CONTEXT_EXTRA_KEYS} keys besides the known ones")
        for key in extra:
            if len(key) > 64:
                raise ValueError(f"key {key[:64]!r}...: names are at most 64 characters")
        return self

    def unknown_keys(self) -> list[str]:
        """The keys this graph does not use (accepted, not acted on): what ``meta.tags`` names."""
        return sorted(self.model_extra or {})

    @field_validator("hour", mode="before")
    @classmethod
    def _int_hour(cls, value: Any) -> Any:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value


class RecommendationRequest(_Model):
    # strict JSON types ("10" is not a count, "yes" not a bool); ids and integral floats are converted by the
    # before-validators first (gRPC Struct numbers arrive as floats)
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)

    user_id: str = _ID
    num_recommendations: int = Field(default=10, ge=1, le=MAX_RECOMMENDATIONS)
    context: RequestContext = Field(default_factory=RequestContext)
    exclude_items: list[str] = Field(
        default_factory=list,
        max_length=MAX_EXCLUDED_ITEMS,
        json_schema_extra={"items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
    )
    include_explanation: bool = True
    request_id: _RequestId | None = None

    _id = field_validator("user_id", mode="before")(_strict_id)

    @field_validator("num_recommendations", mode="before")
    @classmethod
    def _int_count(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("must be an integer")
        if isinstance(value, float) and value.is_integer():
            return int(value)  # gRPC Struct numbers arrive as floats
        return value

    @field_validator("exclude_items", mode="before")
    @classmethod
    def _ids(cls, value: Any) -> Any:
        if not isinstance(value, list):
            raise ValueError("must be a list of item ids")
        return [_strict_id(v) for v in value]


class RecommendedItem(_Model):
    item_id: str
    title: str = ""
    category: str = ""
    score: float
    rank: int = Field(ge=1)
    explanation: str | None = None
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    component_scores: dict[str, float] = Field(default_factory=dict)
    #: added since the last retrain (``smartreco items add``): recommended for its content, no interactions yet
    new_item: bool = False


class RecommendationResponse(_Model):
    user_id: str
    recommendations: list[RecommendedItem]
    model_version: str
    variant: str
    timestamp: datetime
    context: RequestContext = Field(default_factory=RequestContext)
    request_id: str | None = None
    cold_start: bool = False
    degraded: list[str] = Field(default_factory=list)


class FeedbackTruth(_Model):
    item_id: str = _ID
    interaction_type: InteractionType

    _id = field_validator("item_id", mode="before")(_strict_id)


class Feedback(_Model):
    """One reward for one served response; ``feedback_id`` makes retries idempotent."""

    feedback_id: str | None = Field(default=None, max_length=128)
    request_id: str | None = Field(default=None, max_length=128)
    user_id: str = _ID
    variant: str | None = None
    reward: float = Field(ge=0.0, le=100.0)
    truth: FeedbackTruth | None = None
    timestamp: datetime | None = None

    _id = field_validator("user_id", mode="before")(_strict_id)


def unknown_context_keys(context: Any) -> list[str]:
    """The keys of a (validated, dumped) request context this graph does not know, sorted."""
    if not isinstance(context, dict):
        return []
    return sorted(set(context) - set(RequestContext.model_fields))


class SeldonMeta(_Model):
    """Seldon's ``meta`` of a request message (the fields of its proto ``Meta``), strict.

    ``puid`` is the client's request id: a string of at most ``MAX_REQUEST_ID_CHARS`` printable ASCII
    characters (empty means none), because it becomes a log id and a key of the routing memory."""

    model_config = ConfigDict(extra="forbid", strict=True)  # as sent: a puid with spaces is refused, not trimmed

    puid: _RequestId | None = None
    tags: dict[str, Any] = Field(default_factory=dict, max_length=MAX_META_TAGS)
    routing: dict[str, int] = Field(default_factory=dict)
    requestPath: dict[str, str] = Field(default_factory=dict)  # noqa: N815 - Seldon's field name
    metrics: list[dict[str, Any]] = Field(default_factory=list)


def parse_meta(meta: Any, where: str = "meta") -> SeldonMeta:
    """Validate a message's ``meta`` (None: absent); RequestValidationError naming e.g. ``meta.puid``."""
    if meta is None:
        return SeldonMeta()
    if not isinstance(meta, dict):
        raise RequestValidationError(f"{where}: must be an object, got {type(meta).__name__}", where)
    try:
        return parse_or_raise(SeldonMeta, meta)
    except RequestValidationError as exc:
        raise RequestValidationError(f"{where}.{exc}", f"{where}.{exc.field}") from None


def check_message_meta(message: Any) -> None:
    """Validate every ``meta`` a Seldon message carries: a prediction's own, and a feedback's
    ``request.meta`` / ``response.meta``. Run at the edge (REST and gRPC) before the graph walk."""
    if not isinstance(message, dict):
        return  # the body's own shape is checked by whoever parses it
    if "meta" in message:
        parse_meta(message["meta"])
    for part in ("request", "response"):
        sub = message.get(part)
        if isinstance(sub, dict) and "meta" in sub:
            parse_meta(sub["meta"], f"{part}.meta")


def parse_or_raise(model: type[BaseModel], payload: Any) -> Any:
    """Validate ``payload``; on failure raise one RequestValidationError naming the first bad field."""
    if not isinstance(payload, dict):
        raise RequestValidationError(f"request body must be a JSON object, got {type(payload).__name__}", None)
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ())) or "request"
        msg = err.get("msg", "invalid value").removeprefix("Value error, ")
        raise RequestValidationError(f"{where}: {msg}", where) from None
