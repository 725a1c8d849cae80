"""The CloudEvent Knative's RabbitmqSource makes of a RabbitMQ message, and POSTs to its sink.

As eventing-rabbitmq's adapter converts a message that is not a CloudEvent already
(`ConvertToCloudEvent`): id = the message's `message_id`, else a new UUID; type
`dev.knative.rabbitmq.event`; source `/apis/v1/namespaces/<namespace>/rabbitmqsources/<name>#<queue>`;
subject = the id; time = the message's timestamp; data = the body, with the message's content type.
Pure: message parts in, event out.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from eventing.cloudevent import CloudEvent

RABBITMQ_SOURCE_EVENT = "dev.knative.rabbitmq.event"


def source_of(namespace: str, name: str, queue: str) -> str:
    """The event source the RabbitmqSource `name` in `namespace` reading `queue` sets."""
    return f"/apis/v1/namespaces/{namespace}/rabbitmqsources/{name}#{queue}"


def from_message(
    body: bytes,
    *,
    source: str,
    content_type: str | None = None,
    message_id: str | None = None,
    timestamp: int | None = None,
) -> CloudEvent:
    """The RabbitmqSource event for one message (`timestamp` in seconds since the epoch, AMQP's)."""
    event_id = message_id or str(uuid.uuid4())
    moment = datetime.fromtimestamp(timestamp, UTC) if timestamp else datetime.now(UTC)
    attributes = {
        "specversion": "1.0",
        "id": event_id,
        "type": RABBITMQ_SOURCE_EVENT,
        "source": source,
        "subject": event_id,
        "time": moment.isoformat().replace("+00:00", "Z"),
        "datacontenttype": content_type or "application/json",
    }
    return CloudEvent(attributes, body)
