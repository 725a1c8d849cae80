"""W3C traceparent handling: parsing, the next hop, and the context events pick it up from."""

from __future__ import annotations

import pytest

from eventing.cloudevent import new_event
from shared import tracing

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        (VALID, ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "01")),
        (VALID.upper(), ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "01")),
        (" " + VALID + " ", ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "01")),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", None),  # all-zero trace id
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", None),  # all-zero span id
        ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None),  # unknown version
        ("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", None),  # short trace id
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", None),  # no flags
        ("not a traceparent", None),
        ("", None),
        (None, None),
    ],
)
def test_parse(value: str | None, parsed: tuple[str, str, str] | None) -> None:
    assert tracing.parse(value) == parsed


def test_the_next_hop_keeps_the_trace_and_flags_with_a_new_span() -> None:
    child = tracing.child_of(VALID)
    trace_id, span_id, flags = tracing.parse(child) or ("", "", "")
    assert (trace_id, flags) == ("4bf92f3577b34da6a3ce929d0e0e4736", "01") and span_id != "00f067aa0ba902b7"
    fresh = tracing.child_of("garbage")
    assert tracing.parse(fresh) is not None and tracing.trace_id(fresh) != trace_id


def test_events_made_inside_traced_work_carry_the_next_hop() -> None:
    outside = new_event("io.example.t", "/s")
    assert tracing.TRACEPARENT not in outside.attributes and tracing.current() is None
    with tracing.continued(VALID) as here:
        inner = new_event("io.example.t", "/s")
        assert tracing.trace_id(here) == tracing.trace_id(VALID)
    assert tracing.trace_id(inner.get(tracing.TRACEPARENT)) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert inner.get(tracing.TRACEPARENT) == here != VALID  # the hop that made it is the next one's parent
    assert tracing.current() is None


def test_http_headers_only_for_a_valid_traceparent() -> None:
    assert tracing.http_headers(VALID) == {"traceparent": VALID}
    assert tracing.http_headers("nope") == {} and tracing.http_headers(None) == {}
