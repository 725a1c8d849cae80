"""W3C trace context carried on CloudEvents (the distributed-tracing extension `traceparent`).

One upload's whole journey shares a trace id: the first hop starts a trace (or continues the
client's `traceparent` header); each hop (`continued`) gets its own span id under its parent's; an
event made during a hop carries that hop's `traceparent` (`eventing.cloudevent.new_event` reads it),
so the next hop is its child; and every log line written meanwhile has `trace_id`. Pure helpers
plus one context variable; a tracing backend is optional (`shared.otel`).
"""

from __future__ import annotations

import contextlib
import contextvars
import re
import secrets
from collections.abc import Iterator

from shared import otel

TRACEPARENT = "traceparent"  # the CloudEvent extension attribute and the HTTP header
_FORMAT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("traceparent", default=None)


def parse(traceparent: str | None) -> tuple[str, str, str] | None:
    """(trace id, parent span id, flags) of a valid version-00 traceparent, else None."""
    match = _FORMAT.match((traceparent or "").strip().lower())
    if match is None:
        return None
    trace_id, span_id, flags = match.groups()
    if trace_id == "0" * 32 or span_id == "0" * 16:
        return None  # all-zero ids are invalid (W3C trace context)
    return trace_id, span_id, flags


def new_traceparent() -> str:
    """A new trace, sampled."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def child_of(traceparent: str | None) -> str:
    """The next hop of a trace (same trace id, new span id), or a new trace when there is none."""
    parsed = parse(traceparent)
    if parsed is None:
        return new_traceparent()
    trace_id, _, flags = parsed
    return f"00-{trace_id}-{secrets.token_hex(8)}-{flags}"


def trace_id(traceparent: str | None) -> str | None:
    parsed = parse(traceparent)
    return parsed[0] if parsed else None


def http_headers(traceparent: str | None) -> dict[str, str]:
    """The W3C `traceparent` HTTP header for a request that carries an event of this trace."""
    return {TRACEPARENT: traceparent} if parse(traceparent) is not None and traceparent else {}


def current() -> str | None:
    """The traceparent of the work in progress in this context (None outside any)."""
    return _current.get()


@contextlib.contextmanager
def continued(parent: str | None, name: str = "datafrost") -> Iterator[str]:
    """Work that is the next hop of `parent` (a new trace when it is missing or invalid).

    With OpenTelemetry export on (`shared.otel`), the hop is also a span named `name`.
    """
    tracer = otel.tracer()
    with contextlib.ExitStack() as stack:
        if tracer is None:
            here = child_of(parent)
        else:
            here = stack.enter_context(otel.span(tracer, name, parent if parse(parent) else None))
        token = _current.set(here)
        try:
            yield here
        finally:
            _current.reset(token)
