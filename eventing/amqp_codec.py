"""CloudEvent <-> RabbitMQ (AMQP 0-9-1) message, in the layout the Knative eventing-rabbitmq broker uses.

What eventing-rabbitmq does (knative-extensions/eventing-rabbitmq):

- `pkg/rabbit/message.go` `CloudEventToRabbitMQMessage` (used by the ingress, `cmd/ingress/main.go`,
  and by the dispatcher for dead letters, `pkg/dispatcher/dispatcher.go`) writes a binary-mode message:
  every attribute as an AMQP header named by the bare attribute name, no `ce-` prefix (`specversion`,
  `id`, `type`, `source`, `time`, `subject`, `dataschema`, and each extension), plus a `content-type`
  header holding datacontenttype; the message properties carry `content_type` = datacontenttype and
  `message_id` = the event id; the body is the raw data bytes; delivery mode persistent. It also sets
  `traceparent`/`tracestate` headers from the tracing span.
- `pkg/reconciler/trigger/resources/binding.go` binds each trigger queue to the broker's headers
  exchange with arguments `{"x-match": "all", "x-knative-trigger": <trigger>, **filter.attributes}`;
  RabbitMQ ignores `x-` arguments when matching, so the unprefixed attribute headers are what
  `filter.attributes` matches (exact string equality, AND).
- `pkg/rabbit/message.go` `NewMessageFromDelivery` / `ReadBinary` (the dispatcher's decoder): header
  names are lower-cased and a `ce-` prefix trimmed, `x-` headers skipped, `content-type` becomes
  datacontenttype; a message whose `content_type` property is a structured format
  (`application/cloudevents+json`) is decoded as a structured event instead.

Differences here: every header value is the attribute's canonical string (the Go code puts typed
extension values in the table, which a string binding argument would not match); an absent `time` or
datacontenttype is left out rather than written as a zero time or ""; `traceparent`/`tracestate` are
kept as the extensions they are, not dropped. `from_amqp` validates with `eventing.validation`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from eventing.cloudevent import CloudEvent
from eventing.http_codec import STRUCTURED_CONTENT_TYPE, parse_structured
from eventing.validation import InvalidEvent, canonical_attributes

CONTENT_TYPE_HEADER = "content-type"


@dataclass(frozen=True)
class AmqpMessage:
    """What to publish: headers table, body and the content_type / message_id properties."""

    headers: dict[str, str] = field(hash=False)
    body: bytes
    content_type: str | None
    message_id: str


def to_amqp(event: CloudEvent) -> AmqpMessage:
    """Binary mode as eventing-rabbitmq writes it: attributes as bare-named headers, data as body."""
    headers = {name: value for name, value in event.attributes.items() if name != "datacontenttype"}
    if event.datacontenttype is not None:
        headers[CONTENT_TYPE_HEADER] = event.datacontenttype
    return AmqpMessage(headers, event.data or b"", event.datacontenttype, event.id)


def _header_value(name: str, value: object) -> object:
    """A header value as pika hands it over, in the form canonical_attributes(from_json=True) takes."""
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidEvent(f"header {name!r} is not valid UTF-8") from None
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.isoformat().replace("+00:00", "Z")
    if value is None or isinstance(value, str | bool | int | float):
        return value
    raise InvalidEvent(f"header {name!r} has a {type(value).__name__} value; attributes are scalars")


def _attributes_from_headers(headers: Mapping[str, object]) -> dict[str, object]:
    raw: dict[str, object] = {}
    for key, value in headers.items():
        name = key.lower().removeprefix("ce-")
        if name.startswith("x-"):
            continue
        if name == CONTENT_TYPE_HEADER:
            name = "datacontenttype"
            if value in ("", b""):
                continue
        if name in raw:
            raise InvalidEvent(f"attribute {name!r} is given by more than one header")
        raw[name] = _header_value(key, value)
    return raw


def from_amqp(headers: Mapping[str, object], body: bytes, content_type: str | None) -> CloudEvent:
    """Decode a delivered message (headers, body, content_type property) into a validated CloudEvent."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type == STRUCTURED_CONTENT_TYPE:
        return parse_structured(body)
    raw = _attributes_from_headers(headers)
    if raw.get("specversion") is None:
        raise InvalidEvent("not a CloudEvent: no specversion header and content_type is not structured")
    if raw.get("datacontenttype") is None and content_type:
        raw["datacontenttype"] = content_type
    return CloudEvent(canonical_attributes(raw, from_json=True), body or None)
