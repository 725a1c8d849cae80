"""inspect: describes every image uploaded to the uploads bucket.

Consumes: io.datafrost.object.created with extension bucket = the uploads bucket (a setting).
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
from functions.context import Context
from functions.replies import image_reply
from functions.runtime import target
from functions.spec import FunctionSpec
from functions.uploads import IMAGE_PROCESS_ENV, UPLOADS_CREATED, Finished, process_upload
from pipeline import events
from pipeline.ownership import owner_of
from shared.objectstore import ObjectStore
from shared.objectstore.factory import open_store
from shared.settings import Settings

SOURCE = "/functions/inspect"
STAGE = "inspect"


def on_event(event: CloudEvent, context: Context) -> CloudEvent | None:
    return inspect_event(event, context.client(open_store), context.settings)


def inspect_event(event: CloudEvent, objects: ObjectStore, config: Settings) -> CloudEvent | None:
    """The reply to one object.created event: image.analyzed, image.rejected or None."""
    from functions.inspect.analyze import analyze  # Pillow loads in this function's process only

    upload = process_upload(event, objects, config, STAGE, SOURCE, analyze)
    if isinstance(upload, Finished):
        return upload.reply
    created = upload.created
    analyzed = events.ImageAnalyzed(
        image_id=upload.image_id,
        bucket=created.bucket,
        key=created.key,
        owner=owner_of(created.key),
        **dataclasses.asdict(upload.result),
    )
    return image_reply(event, SOURCE, events.IMAGE_ANALYZED, analyzed, "analyzed")


SPEC = FunctionSpec(
    name="inspect",
    description="Describes uploaded images: size, format, hashes, EXIF, dominant colour",
    consumes=(events.OBJECT_CREATED,),
    emits=(events.IMAGE_ANALYZED, events.IMAGE_REJECTED),
    triggers=(UPLOADS_CREATED.in_any_order(),),  # each image on its own: no order needed
    on_event=on_event,
    visibility="cluster-local",  # events only: nothing for users to call
    env=IMAGE_PROCESS_ENV,
)
handle = target(SPEC)
