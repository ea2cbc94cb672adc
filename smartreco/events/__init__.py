"""The event service: Seldon request-logger CloudEvents and durable feedback into one event log.

``cloudevents`` parses and validates the logger's events, ``eventlog`` is the log protocol and its
local backend (the fsync'd segment log of ``smartreco.feedback``), ``writer`` the group commit, ``app``
the Starlette app (``python -m smartreco.events``), ``client`` the client the graph uses. Only
``cloudevents``, ``eventlog`` and ``client`` are imported here: the app needs the serving extra.
"""

from smartreco.events.client import EventClient, EventServiceUnavailable, FeedbackAck, FeedbackRejected
from smartreco.events.cloudevents import EVENT_TYPES, InvalidEvent, LoggedEvent, parse_event
from smartreco.events.eventlog import EventLog, LocalEventLog, open_event_log

__all__ = [
    "EVENT_TYPES",
    "EventClient",
    "EventLog",
    "EventServiceUnavailable",
    "FeedbackAck",
    "FeedbackRejected",
    "InvalidEvent",
    "LocalEventLog",
    "LoggedEvent",
    "open_event_log",
    "parse_event",
]
