"""Column-name constants for the canonical tables (ARCHITECTURE §3).

Every module refers to columns through these names, never through string literals, so a rename is
one edit (the microsoft/recommenders convention).
"""

from __future__ import annotations

# interactions
USER_ID = "user_id"
ITEM_ID = "item_id"
INTERACTION_ID = "interaction_id"
INTERACTION_TYPE = "interaction_type"
TIMESTAMP = "timestamp"
SESSION_ID = "session_id"
CHANNEL = "channel"
DEVICE_TYPE = "device_type"
RATING = "rating"
DURATION = "duration"

# items
TITLE = "title"
CATEGORY = "category"
SUBCATEGORY = "subcategory"
BRAND = "brand"
PRICE = "price"
TAGS = "tags"
DESCRIPTION = "description"
CREATED_DATE = "created_date"

# users
REGISTRATION_DATE = "registration_date"
AGE_GROUP = "age_group"
GENDER = "gender"
LOCATION = "location"
SUBSCRIPTION_TIER = "subscription_tier"

# derived
WEIGHT = "weight"
SCORE = "score"
RANK = "rank"
PREDICTION = "prediction"

INTERACTION_TYPES: tuple[str, ...] = (
    "view", "click", "add_to_cart", "purchase", "like", "share", "rating",
)
CHANNELS: tuple[str, ...] = ("web", "mobile", "email")

#: Implicit-feedback strength of each interaction type — the one place these weights live.
#: A rating's weight is derived from its value by :func:`smartreco.data.signals.interaction_weight`.
INTERACTION_WEIGHTS: dict[str, float] = {
    "view": 0.1,
    "click": 0.5,
    "add_to_cart": 1.5,
    "share": 2.0,
    "like": 3.0,
    "purchase": 4.0,
    "rating": 1.0,
}
#: A rating at or above this is a positive (ARCHITECTURE §3/§5).
POSITIVE_RATING = 4.0
#: Interaction types that are positive whatever their rating.
POSITIVE_TYPES: frozenset[str] = frozenset({"purchase", "like"})
#: Inactivity gap that closes a session.
SESSION_GAP_SECONDS = 30 * 60

REQUIRED_INTERACTION_COLUMNS: tuple[str, ...] = (USER_ID, ITEM_ID, INTERACTION_TYPE, TIMESTAMP)
OPTIONAL_INTERACTION_COLUMNS: tuple[str, ...] = (
    INTERACTION_ID, SESSION_ID, CHANNEL, DEVICE_TYPE, RATING, DURATION,
)
REQUIRED_ITEM_COLUMNS: tuple[str, ...] = (ITEM_ID, TITLE, CATEGORY)
OPTIONAL_ITEM_COLUMNS: tuple[str, ...] = (
    SUBCATEGORY, BRAND, PRICE, TAGS, DESCRIPTION, CREATED_DATE,
)
REQUIRED_USER_COLUMNS: tuple[str, ...] = (USER_ID,)
OPTIONAL_USER_COLUMNS: tuple[str, ...] = (
    REGISTRATION_DATE, AGE_GROUP, GENDER, LOCATION, SUBSCRIPTION_TIER,
)
