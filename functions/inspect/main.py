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

from eventing.cloudevent import CloudEvent
from functions.replies import image_reply
from functions.runtime import cloudevent_function
from functions.spec import FunctionSpec, TriggerSpec
from functions.uploads import Finished, process_upload
from pipeline import events
from shared.objectstore import ObjectStore
from shared.objectstore.factory import process_store as store
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


def on_event(event: CloudEvent) -> CloudEvent | None:
    return inspect_event(event, store(), settings())


def inspect_event(event: CloudEvent, objects: ObjectStore, config: Settings) -> CloudEvent | None:
    """The reply to one object.created event: image.analyzed, image.rejected or None."""
    from functions.inspect.analyze import analyze  # Pillow loads in this function's process only

    upload = process_upload(event, objects, config, STAGE, SOURCE, analyze)
    if isinstance(upload, Finished):
        return upload.reply
    created = upload.created
    owner = created.key.split("/", 1)[0] if "/" in created.key else None
    analyzed = events.ImageAnalyzed(
        image_id=upload.image_id,
        bucket=created.bucket,
        key=created.key,
        owner=owner,
        **dataclasses.asdict(upload.result),
    )
    return image_reply(event, SOURCE, events.IMAGE_ANALYZED, analyzed, "analyzed")


handle = cloudevent_function(SPEC, on_event)
