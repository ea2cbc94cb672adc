"""Error types whose message is the one line a user sees (CLI exit 1, HTTP 400, INVALID_ARGUMENT)."""

from __future__ import annotations


class SmartRecoError(Exception):
    """Base class: anything raised on purpose, with a message fit for a user."""


class DataError(SmartRecoError, ValueError):
    """Input data that does not follow the canonical contract (missing column, wrong type, ...)."""


class ChecksumError(DataError):
    """A bundled or downloaded file whose SHA-256 differs from its manifest."""
