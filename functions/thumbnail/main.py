"""thumbnail: renders the configured variants of every image uploaded to the uploads bucket.

Consumes: io.datafrost.object.created with extension bucket = the uploads bucket (a setting).
Emits (as the reply, published by the broker): io.datafrost.image.thumbnailed with every variant
(bucket, key, width, height, format, bytes), or io.datafrost.image.rejected (stage "thumbnail")
when the content is not an acceptable image: an outcome, answered 2xx, never retried. A missing
object (deleted meanwhile) is logged and answered with no event.
Writes: each variant to the variants bucket (DATAFROST_VARIANTS, e.g. thumb:256:webp), a bucket no
trigger of this function listens to, so its own writes never re-trigger it.
Idempotent: variant keys are deterministic, `<image_id>/<name>.<ext>`, and rendering is
deterministic, so a redelivery overwrites each variant with the same bytes; the reply's id derives
from the input's (`<id>.thumbnailed`, `<id>.thumbnail.rejected`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eventing.cloudevent import CloudEvent
from functions.context import Context
from functions.replies import image_reply
from functions.runtime import target
from functions.spec import FunctionSpec
from functions.uploads import IMAGE_PROCESS_ENV, UPLOADS_CREATED, Finished, process_upload
from pipeline import events
from shared import metrics
from shared.objectstore import ObjectStore
from shared.objectstore.factory import open_store
from shared.settings import Settings

if TYPE_CHECKING:
    from functions.thumbnail.render import Rendered
    from pipeline.images import Limits

SOURCE = "/functions/thumbnail"
STAGE = "thumbnail"


def on_event(event: CloudEvent, context: Context) -> CloudEvent | None:
    return thumbnail_event(event, context.client(open_store), context.settings)


def variant_key(image_id: str, name: str, extension: str) -> str:
    return f"{image_id}/{name}.{extension}"


def thumbnail_event(event: CloudEvent, objects: ObjectStore, config: Settings) -> CloudEvent | None:
    """Render and store the variants of one object.created event; the reply, or None."""
    from functions.thumbnail.render import parse_variants, render  # Pillow: this process only

    def rendered_variants(data: bytes, limits: Limits) -> list[Rendered]:
        return render(data, parse_variants(config.variants), limits)

    upload = process_upload(event, objects, config, STAGE, SOURCE, rendered_variants)
    if isinstance(upload, Finished):
        return upload.reply
    created, image_id = upload.created, upload.image_id
    objects.ensure_bucket(config.variants_bucket)
    variants = []
    for variant in upload.result:
        spec = variant.spec
        key = variant_key(image_id, spec.name, spec.extension)
        metadata = {"image-id": image_id, "variant": spec.name}
        objects.put(config.variants_bucket, key, variant.data, spec.content_type, metadata)
        metrics.image_bytes.labels(STAGE, "written").inc(len(variant.data))
        variants.append(
            events.Variant(
                name=spec.name,
                bucket=config.variants_bucket,
                key=key,
                width=variant.width,
                height=variant.height,
                format=spec.format,
                bytes=len(variant.data),
            )
        )
    thumbnailed = events.ImageThumbnailed(image_id, created.bucket, created.key, variants)
    return image_reply(event, SOURCE, events.IMAGE_THUMBNAILED, thumbnailed, "thumbnailed")


SPEC = FunctionSpec(
    name="thumbnail",
    description="Renders resized, metadata-free variants of uploaded images",
    consumes=(events.OBJECT_CREATED,),
    emits=(events.IMAGE_THUMBNAILED, events.IMAGE_REJECTED),
    triggers=(UPLOADS_CREATED.in_any_order(),),  # each image on its own: no order needed
    on_event=on_event,
    visibility="cluster-local",  # events only: nothing for users to call
    env=IMAGE_PROCESS_ENV,
)
handle = target(SPEC)
