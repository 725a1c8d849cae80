"""thumbnail: renders the configured variants of every image uploaded to the uploads bucket.

Consumes: io.datafrost.object.created with extension bucket=uploads.
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

import logging

from eventing.cloudevent import CloudEvent
from functions.replies import image_reply, payload_of
from functions.runtime import cloudevent_function
from functions.spec import FunctionSpec, TriggerSpec
from shared import events, metrics
from shared.objectstore import ObjectNotFound, ObjectStore
from shared.objectstore.factory import process_store as store
from shared.settings import Settings, settings

SOURCE = "/functions/thumbnail"
STAGE = "thumbnail"
SPEC = FunctionSpec(
    name="thumbnail",
    kind="cloudevent",
    description="Renders resized, metadata-free variants of uploaded images",
    consumes=(events.OBJECT_CREATED,),
    emits=(events.IMAGE_THUMBNAILED, events.IMAGE_REJECTED),
    triggers=(
        TriggerSpec(
            name="uploads",
            filter={"type": events.OBJECT_CREATED, events.BUCKET_EXTENSION: "uploads"},
        ),
    ),
)
log = logging.getLogger("datafrost.thumbnail")


def on_event(event: CloudEvent) -> CloudEvent | None:
    return thumbnail_event(event, store(), settings())


def variant_key(image_id: str, name: str, extension: str) -> str:
    return f"{image_id}/{name}.{extension}"


def thumbnail_event(event: CloudEvent, objects: ObjectStore, config: Settings) -> CloudEvent | None:
    """Render and store the variants of one object.created event; the reply, or None."""
    from functions.thumbnail.render import parse_variants, render  # Pillow: this process only
    from shared.images import Limits, RejectedImage, check_size

    created = payload_of(event, events.ObjectCreated)
    if created.bucket == config.variants_bucket or created.key.endswith("/"):
        log.info("ignored %s/%s: not an upload", created.bucket, created.key)
        return None
    image_id = events.image_id(created.bucket, created.key)
    specs = parse_variants(config.variants)
    limits = Limits.from_settings(config)
    try:
        check_size(created.size, limits)
        with metrics.image_processing_duration.labels(STAGE).time():
            original = objects.get(created.bucket, created.key)
            metrics.image_bytes.labels(SPEC.name, "read").inc(len(original))
            rendered = render(original, specs, limits)
    except ObjectNotFound:
        log.info("%s/%s is gone (deleted since the event): nothing to render", created.bucket, created.key)
        return None
    except RejectedImage as exc:
        log.info("rejected %s/%s: %s", created.bucket, created.key, exc)
        rejected = events.ImageRejected(image_id, created.bucket, created.key, str(exc), STAGE)
        return image_reply(event, SOURCE, events.IMAGE_REJECTED, rejected, f"{STAGE}.rejected")
    objects.ensure_bucket(config.variants_bucket)
    variants = []
    for variant in rendered:
        spec = variant.spec
        key = variant_key(image_id, spec.name, spec.extension)
        metadata = {"image-id": image_id, "variant": spec.name}
        objects.put(config.variants_bucket, key, variant.data, spec.content_type, metadata)
        metrics.image_bytes.labels(SPEC.name, "written").inc(len(variant.data))
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


handle = cloudevent_function(SPEC, on_event)
