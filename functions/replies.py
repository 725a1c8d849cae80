"""What event-consuming functions share: typed payloads from events, and deterministic reply events."""

from __future__ import annotations

from typing import Any, TypeVar

from eventing.cloudevent import CloudEvent, new_event
from pipeline import events
from shared.errors import PermanentEventError

T = TypeVar("T")


def payload_of(event: CloudEvent, cls: type[T]) -> T:
    """The event's data as `cls`; data that does not fit can never be processed (422, dead-lettered)."""
    try:
        return events.payload(cls, event.json())
    except (ValueError, TypeError) as exc:
        raise PermanentEventError(f"{event.type} data is not a valid {cls.__name__}: {exc}") from None


def image_reply(event: CloudEvent, source: str, type: str, data: Any, suffix: str) -> CloudEvent:
    """A reply about an image; its id derives from the input's, so a redelivery is answered identically."""
    return new_event(
        type,
        source,
        data,
        id=f"{event.id}.{suffix}",
        subject=data.image_id,
        extensions={events.BUCKET_EXTENSION: data.bucket},
    )
