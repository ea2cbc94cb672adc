"""Durable feedback log (fsync before ack, idempotent ids) and its dataset view; numpy/pandas/stdlib only."""

from smartreco.feedback.dataset import read_dataset, read_impressions, read_interactions
from smartreco.feedback.log import (
    AppendResult,
    FeedbackLog,
    FeedbackLogError,
    FeedbackLogUnavailable,
    iter_records,
)
from smartreco.feedback.records import FEEDBACK, IMPRESSION, make_record

__all__ = [
    "FEEDBACK",
    "IMPRESSION",
    "AppendResult",
    "FeedbackLog",
    "FeedbackLogError",
    "FeedbackLogUnavailable",
    "iter_records",
    "make_record",
    "read_dataset",
    "read_impressions",
    "read_interactions",
]
