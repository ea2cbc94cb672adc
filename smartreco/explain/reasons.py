"""Turn a ranked item's component contributions into one plain sentence ("why was this recommended").

The ranker reports how much each component (cf, cb, cooccurrence, popularity, context) added to the
score and, where content or co-occurrence drove it, the history item responsible (``because_item``).
The sentence names the largest contribution; the rest stay visible in ``component_scores``.
"""

from __future__ import annotations

from collections.abc import Mapping

COMPONENTS = ("cf", "cb", "cooccurrence", "popularity", "context")


def dominant_component(component_scores: Mapping[str, float]) -> str | None:
    """The component with the largest positive contribution, or None when none is positive."""
    best, best_value = None, 0.0
    for name in COMPONENTS:
        value = float(component_scores.get(name, 0.0) or 0.0)
        if value > best_value:
            best, best_value = name, value
    return best


def explain(
    component_scores: Mapping[str, float],
    *,
    because_title: str | None = None,
    category: str | None = None,
    channel: str | None = None,
    new_item: bool = False,
    session: bool = False,
) -> str:
    """One sentence for an item from its component contributions. A new item (added since the last retrain,
    no interactions yet) is recommended for its content alone, and the sentence says both. An item the session
    rule placed (``session``) is there because of a click in its category a moment ago, and says which."""
    top = dominant_component(component_scores)
    where = f" in {category}" if category else ""
    if new_item:
        return f"new{where}, similar to {because_title}" if because_title else f"new{where}"
    if session and because_title:
        return f"more{where}: you just viewed {because_title}"
    if top in ("cb", "cooccurrence") and because_title:
        return f"because you liked {because_title}"
    if top == "cf":
        return "people with similar taste rated it highly"
    if top == "context" and channel:
        return f"popular{where} on {channel} at this time of day"
    if because_title and top is None:
        return f"because you liked {because_title}"
    return f"popular{where} this week"


def confidence_label(confidence: float | None) -> str:
    """Coarse wording for a 0..1 confidence, for UIs that show words rather than numbers."""
    if confidence is None:
        return "unknown"
    return "high" if confidence >= 0.66 else "medium" if confidence >= 0.33 else "low"
