"""JSON log lines: one object per line. Fields (stable; README, "Logs"): time, level, function,
logger, trace_id, and while an event is handled event_id, event_type, event_source, image_id; then
any structured fields, message, and error/stack for failures."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

from shared import tracing

_event_context: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("event_context", default={})  # noqa: B039
_function_name = "datafrost"

# Names a log record must never carry, whatever a caller passes in `extra`.
_SECRET_KEYS = frozenset({"authorization", "token", "password", "secret", "access_token"})


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "function": _function_name,
            "logger": record.name,
        }
        trace = tracing.trace_id(tracing.current())
        if trace is not None:
            line["trace_id"] = trace
        line.update(_event_context.get())
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update({k: v for k, v in fields.items() if k.lower() not in _SECRET_KEYS})
        line["message"] = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            line["error"] = f"{type(exc).__name__}: {str(exc)[:500]}"
            line["stack"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def configure(function: str, level: str = "INFO") -> None:
    """Route the root logger to stderr as JSON lines, once per process."""
    global _function_name
    _function_name = function
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("urllib3", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # pika logs every failed connection attempt as an error; the broker reports those itself.
    logging.getLogger("pika").setLevel(logging.CRITICAL)


@contextlib.contextmanager
def event_context(event_id: str, event_type: str, **extra: str | None) -> Iterator[None]:
    """Attach an event's id, type and `extra` fields (None ones left out) to every line in the block."""
    fields = {"event_id": event_id, "event_type": event_type}
    fields.update({k: v for k, v in extra.items() if v is not None})
    token = _event_context.set(fields)
    try:
        yield
    finally:
        _event_context.reset(token)


def log_fields(**fields: object) -> dict[str, object]:
    """`extra=` for structured fields: logger.info("msg", extra=log_fields(key=value))."""
    return {"fields": fields}
