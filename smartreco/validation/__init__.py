"""Data validation: blocking checks (pandera) + a readable HTML report (Evidently).

``validate_data(tables)`` runs the checks and returns a :class:`ValidationResult`;
``load_raw(source)`` reads a folder *without* canonicalising it, so bad rows reach the checks
instead of stopping the loader at the first problem.
"""

from smartreco.validation.result import ValidationFailed, ValidationResult, load_raw, validate_data

__all__ = ["ValidationFailed", "ValidationResult", "load_raw", "validate_data"]
