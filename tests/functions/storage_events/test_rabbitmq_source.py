"""The notification inside a RabbitmqSource event: a table of what the source sends."""

from __future__ import annotations

import pytest

from eventing.cloudevent import CloudEvent
from functions.storage_events.rabbitmq_source import RABBITMQ_SOURCE_EVENT, notification_of

ATTRIBUTES = {
    "specversion": "1.0",
    "id": "f147099d-c64d-41f7-b8eb-a2e53b228349",
    "source": "/apis/v1/namespaces/datafrost/rabbitmqsources/minio-notifications#minio-notifications",
    "type": RABBITMQ_SOURCE_EVENT,
    "datacontenttype": "application/json",
}


def event(data: bytes | None, **attributes: str) -> CloudEvent:
    return CloudEvent({**ATTRIBUTES, **attributes}, data)


def test_the_data_is_the_notification() -> None:
    body = b'{"EventName": "s3:ObjectCreated:Put", "Key": "uploads/a.jpg", "Records": []}'
    assert notification_of(event(body)) == {
        "EventName": "s3:ObjectCreated:Put",
        "Key": "uploads/a.jpg",
        "Records": [],
    }


@pytest.mark.parametrize(
    ("data", "attributes", "reason"),
    [
        (b"{}", {"type": "io.datafrost.object.created"}, "expected a dev.knative.rabbitmq.event event"),
        (None, {}, "has no data"),
        (b"[1, 2]", {}, "not a JSON object"),
        (b'"text"', {}, "not a JSON object"),
    ],
)
def test_what_is_not_a_notification(data: bytes | None, attributes: dict[str, str], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        notification_of(event(data, **attributes))


def test_a_body_that_is_not_json_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        notification_of(event(b"not json"))
