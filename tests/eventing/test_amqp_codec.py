"""Table tests for the AMQP codec (eventing-rabbitmq's message layout)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import pytest

from eventing.amqp_codec import AmqpMessage, from_amqp, to_amqp
from eventing.cloudevent import CloudEvent, new_event
from eventing.http_codec import to_structured
from eventing.validation import InvalidEvent

BASE = {"specversion": "1.0", "id": "1", "source": "s", "type": "io.x"}


def headers_exchange_matches(arguments: Mapping[str, str], headers: Mapping[str, object]) -> bool:
    """RabbitMQ headers exchange, x-match all: every non-x- argument equals the header of that name."""
    assert arguments.get("x-match") == "all"
    return all(headers.get(k) == v for k, v in arguments.items() if not k.startswith("x-"))


def test_to_amqp_layout() -> None:
    event = CloudEvent(
        {**BASE, "time": "2024-01-01T00:00:00Z", "datacontenttype": "application/json", "bucket": "images"},
        b'{"a":1}',
    )
    assert to_amqp(event) == AmqpMessage(
        headers={
            "specversion": "1.0",
            "id": "1",
            "source": "s",
            "type": "io.x",
            "time": "2024-01-01T00:00:00Z",
            "bucket": "images",
            "content-type": "application/json",
        },
        body=b'{"a":1}',
        content_type="application/json",
        message_id="1",
    )


def test_to_amqp_without_data() -> None:
    message = to_amqp(CloudEvent(BASE))
    assert (message.headers, message.body, message.content_type) == (BASE, b"", None)


MATCHING = [
    ("type-and-source", {"x-match": "all", "type": "io.x", "source": "s"}, True),
    ("with-trigger-key", {"x-match": "all", "x-knative-trigger": "t1", "type": "io.x"}, True),
    ("extension", {"x-match": "all", "bucket": "images"}, True),
    ("no-filter", {"x-match": "all", "x-knative-trigger": "t1"}, True),
    ("other-type", {"x-match": "all", "type": "io.y", "source": "s"}, False),
    ("other-extension-value", {"x-match": "all", "bucket": "variants"}, False),
    ("case-sensitive", {"x-match": "all", "type": "IO.X"}, False),
    ("absent-attribute", {"x-match": "all", "subject": "k"}, False),
]


@pytest.mark.parametrize(("arguments", "matches"), [r[1:] for r in MATCHING], ids=[r[0] for r in MATCHING])
def test_trigger_binding_matches_headers(arguments: dict[str, str], matches: bool) -> None:
    message = to_amqp(CloudEvent({**BASE, "bucket": "images"}, b"{}"))
    assert headers_exchange_matches(arguments, message.headers) is matches


# (id, headers, body, content_type property, expected event)
ACCEPTED = [
    (
        "as-eventing-rabbitmq-writes-it",
        {
            **BASE,
            "content-type": "application/json",
            "time": "2024-01-01T00:00:00.123456789Z",
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "tracestate": "",
        },
        b'{"a":1}',
        "application/json",
        CloudEvent(
            {
                **BASE,
                "datacontenttype": "application/json",
                "time": "2024-01-01T00:00:00.123456789Z",
                "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                "tracestate": "",
            },
            b'{"a":1}',
        ),
    ),
    (
        "pika-bytes-values",
        {"specversion": b"1.0", "id": b"1", "source": b"s", "type": b"io.x", "subject": "caf\u00e9".encode()},
        b"",
        None,
        CloudEvent({**BASE, "subject": "caf\u00e9"}),
    ),
    (
        "ce-prefixed-and-mixed-case",
        {"ce-specversion": "1.0", "CE-ID": "1", "Ce-Source": "s", "type": "io.x"},
        b"",
        None,
        CloudEvent(BASE),
    ),
    (
        "typed-extensions",
        {**BASE, "num": 5, "flag": True, "off": False, "neg": -(2**31)},
        b"",
        None,
        CloudEvent({**BASE, "num": "5", "flag": "true", "off": "false", "neg": "-2147483648"}),
    ),
    (
        "timestamp-header",
        {**BASE, "time": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)},
        b"",
        None,
        CloudEvent({**BASE, "time": "2024-01-02T03:04:05Z"}),
    ),
    (
        "x-headers-skipped",
        {**BASE, "x-death": [{"count": 1}], "x-first-death-queue": "q"},
        b"",
        None,
        CloudEvent(BASE),
    ),
    ("empty-content-type-header", {**BASE, "content-type": ""}, b"", "", CloudEvent(BASE)),
    (
        "content-type-property-only",
        dict(BASE),
        b"hi",
        "text/plain",
        CloudEvent({**BASE, "datacontenttype": "text/plain"}, b"hi"),
    ),
    ("null-header-absent", {**BASE, "subject": None}, b"", None, CloudEvent(BASE)),
    (
        "structured-message",
        {"ignored": "x"},
        to_structured(CloudEvent(BASE, b"\x00"))[1],
        "application/cloudevents+json",
        CloudEvent(BASE, b"\x00"),
    ),
]


@pytest.mark.parametrize(
    ("headers", "body", "content_type", "expected"), [r[1:] for r in ACCEPTED], ids=[r[0] for r in ACCEPTED]
)
def test_from_amqp_accepts(
    headers: dict[str, object], body: bytes, content_type: str | None, expected: CloudEvent
) -> None:
    assert from_amqp(headers, body, content_type) == expected


def without(name: str) -> dict[str, object]:
    return {k: v for k, v in BASE.items() if k != name}


REJECTED = [
    ("no-specversion", without("specversion"), None, "not a CloudEvent"),
    *[(f"missing-{n}", without(n), None, f"'{n}' is missing") for n in ("id", "source", "type")],
    *[(f"empty-{n}", {**BASE, n: ""}, None, f"'{n}' must not be empty") for n in ("id", "source", "type")],
    ("specversion-0.3", {**BASE, "specversion": "0.3"}, None, "specversion must be '1.0'"),
    ("id-number", {**BASE, "id": 5}, None, "'id' must be a string"),
    ("invalid-utf8-bytes", {**BASE, "subject": b"\xff"}, None, "header 'subject' is not valid UTF-8"),
    ("time-no-offset", {**BASE, "time": "2024-01-01T00:00:00"}, None, "'time' must be an RFC 3339"),
    ("time-date-only", {**BASE, "time": "2024-01-01"}, None, "'time' must be an RFC 3339"),
    ("bad-content-type-header", {**BASE, "content-type": "json"}, None, "'datacontenttype'"),
    ("bad-content-type-property", dict(BASE), "json", "'datacontenttype'"),
    ("subject-empty", {**BASE, "subject": ""}, None, "'subject' is present but empty"),
    ("dataschema-relative", {**BASE, "dataschema": "/x.json"}, None, "'dataschema' must be an absolute URI"),
    ("source-not-uri-reference", {**BASE, "source": "a b"}, None, "'source' must be a URI-reference"),
    ("name-dash", {**BASE, "my-ext": "v"}, None, "'my-ext' is invalid"),
    ("name-underscore", {**BASE, "my_ext": "v"}, None, "'my_ext' is invalid"),
    ("ext-float", {**BASE, "ext": 1.5}, None, "'ext' must be an integer"),
    ("ext-over-int32", {**BASE, "ext": 2**31}, None, "outside the 32-bit"),
    ("ext-table", {**BASE, "ext": {"a": 1}}, None, "header 'ext' has a dict value"),
    ("ext-array", {**BASE, "ext": [1]}, None, "header 'ext' has a list value"),
    ("duplicate-attribute", {**BASE, "ce-type": "io.y"}, None, "'type' is given by more than one header"),
    ("structured-not-json", dict(BASE), "application/cloudevents+json", "body is not valid JSON"),
]


@pytest.mark.parametrize(
    ("headers", "content_type", "reason"), [r[1:] for r in REJECTED], ids=[r[0] for r in REJECTED]
)
def test_from_amqp_rejects(headers: dict[str, object], content_type: str | None, reason: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        from_amqp(headers, b"{", content_type)
    assert reason in str(caught.value)


ROUND_TRIP_EVENTS = [
    ("no-data", new_event("io.datafrost.object.removed", "/storage")),
    (
        "dict-data",
        new_event("io.x", "https://example.com/s", {"bucket": "images"}, extensions={"bucket": "images"}),
    ),
    (
        "unicode-and-extensions",
        new_event(
            "io.x", "/s", {"k": "caf\u00e9"}, subject="caf\u00e9 \U0001f600", extensions={"pct": "%41"}
        ),
    ),
    ("octet-stream", new_event("io.x", "/s", b"\x00\xff", datacontenttype="application/octet-stream")),
    ("dataschema", new_event("io.x", "urn:x", 1).with_attributes(dataschema="https://x/s.json")),
]


@pytest.mark.parametrize("event", [r[1] for r in ROUND_TRIP_EVENTS], ids=[r[0] for r in ROUND_TRIP_EVENTS])
def test_round_trip(event: CloudEvent) -> None:
    message = to_amqp(event)
    assert message.message_id == event.id
    assert from_amqp(message.headers, message.body, message.content_type) == event


@pytest.mark.parametrize("event", [r[1] for r in ROUND_TRIP_EVENTS], ids=[r[0] for r in ROUND_TRIP_EVENTS])
def test_round_trip_with_pika_bytes(event: CloudEvent) -> None:
    message = to_amqp(event)
    as_bytes = {k: v.encode() for k, v in message.headers.items()}
    assert from_amqp(as_bytes, message.body, message.content_type) == event
