"""The MinIO notification inside a RabbitmqSource event (MinIO's AMQP target, on Knative).

MinIO publishes each notification to RabbitMQ; Knative's RabbitmqSource consumes it and POSTs a
binary-mode CloudEvent: type `dev.knative.rabbitmq.event`, data = the message body (the same
`{"EventName", "Key", "Records"}` JSON the webhook target sends). Pure: event in, notification out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eventing.cloudevent import CloudEvent
from eventing.rabbitmq_source import RABBITMQ_SOURCE_EVENT
from shared import safe_json

__all__ = ["RABBITMQ_SOURCE_EVENT", "notification_of"]


def notification_of(event: CloudEvent) -> Mapping[str, Any]:
    """The notification a RabbitmqSource event carries; ValueError names what is wrong."""
    if event.type != RABBITMQ_SOURCE_EVENT:
        raise ValueError(f"expected a {RABBITMQ_SOURCE_EVENT} event, got type {event.type!r}")
    if event.data is None:
        raise ValueError("the event has no data (expected MinIO's notification JSON)")
    body = safe_json.loads(event.data)  # a ValueError when it is not JSON or nests too deep
    if not isinstance(body, dict):
        raise ValueError("the event's data is not a JSON object")
    return body
