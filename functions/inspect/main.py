"""inspect: describes every image uploaded to the uploads bucket.

Consumes: io.datafrost.object.created with extension bucket=uploads.
Emits (as the reply, published by the broker): io.datafrost.image.analyzed (size after EXIF
orientation, format, mode, bytes, sha256, perceptual hash, selected EXIF, dominant colour, frames,
owner), or io.datafrost.image.rejected (stage "inspect") when the content is not an acceptable
image: that is an outcome, answered 2xx, never retried. A missing object (deleted meanwhile) is
logged and answered with no event.
Idempotent: no side effect but the reply, whose id is derived from the input event's id
(`<id>.analyzed`, `<id>.inspect.rejected`), so a redelivery yields the same reply id and consumers
dedupe on (source, id).
"""

from __future__ import annotations

import dataclasses
import logging

from eventing.cloudevent import CloudEvent, new_event
from functions.runtime import cloudevent_function
from functions.spec import FunctionSpec, TriggerSpec
from shared import events
from shared.errors import PermanentEventError
from shared.lazy import once
from shared.objectstore import ObjectNotFound, ObjectStore
from shared.objectstore.factory import open_store
from shared.settings import Settings, settings

SOURCE = "/functions/inspect"
STAGE = "inspect"
SPEC = FunctionSpec(
    name="inspect",
    kind="cloudevent",
    description="Describes uploaded images: size, format, hashes, EXIF, dominant colour",
    consumes=(events.OBJECT_CREATED,),
    emits=(events.IMAGE_ANALYZED, events.IMAGE_REJECTED),
    triggers=(
        TriggerSpec(
            name="uploads",
            filter={"type": events.OBJECT_CREATED, events.BUCKET_EXTENSION: "uploads"},
        ),
    ),
)
log = logging.getLogger("datafrost.inspect")


@once
def store() -> ObjectStore:
    return open_store(settings())


def on_event(event: CloudEvent) -> CloudEvent | None:
    return inspect_event(event, store(), settings())


def inspect_event(event: CloudEvent, objects: ObjectStore, config: Settings) -> CloudEvent | None:
    """The reply to one object.created event: image.analyzed, image.rejected or None."""
    from functions.inspect.analyze import analyze  # Pillow loads in this function's process only
    from shared.images import Limits, RejectedImage, check_size

    created = object_created(event)
    if created.bucket == config.variants_bucket or created.key.endswith("/"):
        log.info("ignored %s/%s: not an upload", created.bucket, created.key)
        return None
    image_id = events.image_id(created.bucket, created.key)
    limits = Limits.from_settings(config)
    try:
        check_size(created.size, limits)
        data = objects.get(created.bucket, created.key)
        result = analyze(data, limits)
    except ObjectNotFound:
        log.info("%s/%s is gone (deleted since the event): nothing to inspect", created.bucket, created.key)
        return None
    except RejectedImage as exc:
        log.info("rejected %s/%s: %s", created.bucket, created.key, exc)
        rejected = events.ImageRejected(image_id, created.bucket, created.key, str(exc), STAGE)
        return reply(event, events.IMAGE_REJECTED, rejected, f"{STAGE}.rejected")
    owner = created.key.split("/", 1)[0] if "/" in created.key else None
    analyzed = events.ImageAnalyzed(
        image_id=image_id, bucket=created.bucket, key=created.key, owner=owner, **dataclasses.asdict(result)
    )
    return reply(event, events.IMAGE_ANALYZED, analyzed, "analyzed")


def object_created(event: CloudEvent) -> events.ObjectCreated:
    """The event's payload; a malformed one can never be processed (422, dead-lettered at once)."""
    try:
        created = events.payload(events.ObjectCreated, event.json())
    except (ValueError, TypeError) as exc:
        raise PermanentEventError(f"{event.type} data is not an ObjectCreated payload: {exc}") from None
    if not (isinstance(created.bucket, str) and isinstance(created.key, str) and created.key):
        raise PermanentEventError(f"{event.type} data needs a bucket and a key, as strings")
    if not isinstance(created.size, int):
        raise PermanentEventError(f"{event.type} data needs the object's size, as an integer")
    return created


def reply(
    event: CloudEvent, type: str, data: events.ImageAnalyzed | events.ImageRejected, suffix: str
) -> CloudEvent:
    """The reply event: its id derives from the input's, so a redelivery is answered identically."""
    return new_event(
        type,
        SOURCE,
        data,
        id=f"{event.id}.{suffix}",
        subject=data.image_id,
        extensions={events.BUCKET_EXTENSION: data.bucket},
    )


handle = cloudevent_function(SPEC, on_event)
