"""Input shape limits shared by the REST and gRPC fronts (SECURITY.md O3).

A 1 MiB body of ``[[[[...`` parses into a structure deep enough to make ``json.loads`` (or any
later recursive walk) raise ``RecursionError``: both are a 400 naming the nesting, never a 500.
"""

from __future__ import annotations

import json
from typing import Any

from smartreco.schema import RequestValidationError

#: the deepest legitimate message (a feedback carrying a whole response) is ~7 levels
MAX_JSON_DEPTH = 32


def check_depth(doc: Any, limit: int = MAX_JSON_DEPTH, where: str = "request body") -> None:
    """RequestValidationError when ``doc`` nests containers deeper than ``limit`` (iterative walk)."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise RequestValidationError(f"{where}: JSON nested deeper than {limit} levels", "body")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values() if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node if isinstance(v, (dict, list)))


def _no_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not JSON", name, 0)


def loads_limited(raw: bytes, limit: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` with a nesting limit; malformed or too deep JSON, NaN/Infinity and integers
    over Python's 4,300-digit conversion limit are a RequestValidationError (400), never a 500."""
    try:
        doc = json.loads(raw, parse_constant=_no_constant)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RequestValidationError(f"request body: malformed JSON ({exc})", "body") from None
    except ValueError as exc:  # int("9" * 4301): "Exceeds the limit (4300 digits) for integer string ..."
        raise RequestValidationError(
            f"request body: a number too long to read ({str(exc).split(';')[0]})", "body"
        ) from None
    except RecursionError:
        raise RequestValidationError(f"request body: JSON nested deeper than {limit} levels", "body") from None
    # fewer brackets than the limit cannot nest deeper than it: skip the walk (the usual small body)
    if raw.count(b"[") + raw.count(b"{") > limit:
        check_depth(doc, limit)
    return doc
