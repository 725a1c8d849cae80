"""What inspect and thumbnail share: reading the upload an object.created event names, and the
outcomes every image function answers the same way (not an upload, gone, rejected content)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from eventing.cloudevent import CloudEvent
from functions.replies import image_reply, payload_of
from functions.spec import UPLOADS_BUCKET, TriggerSpec
from pipeline import events
from shared import metrics
from shared.errors import PermanentEventError
from shared.objectstore import InvalidKey, ObjectNotFound, ObjectStore
from shared.settings import Settings

if TYPE_CHECKING:
    from pipeline.images import Limits

R = TypeVar("R")
log = logging.getLogger("datafrost.uploads")
# One image in memory at a time per process: the decode budget (DATAFROST_IMAGE_MEMORY_BYTES) is the
# process's, and its trigger delivers several events at once (parallelism above 1), so the others wait
# here for their turn, holding no image.
_IMAGE_WORK = threading.BoundedSemaphore(1)
# The environment of every process that decodes images: glibc gives each thread its own malloc arena
# and keeps what an image freed there for that thread, so four request threads taking turns held several
# images' worth: 800 MiB where one image peaks at about 430 MiB (590 MiB with 2 arenas, 420 with one;
# measured with tests/security/test_image_memory.py). Images are decoded one at a time anyway.
IMAGE_PROCESS_ENV = {"MALLOC_ARENA_MAX": "1"}
# The trigger of every function that processes uploads: each object created in the uploads bucket.
UPLOADS_CREATED = TriggerSpec(
    "uploads", {"type": events.OBJECT_CREATED, events.BUCKET_EXTENSION: UPLOADS_BUCKET}
)


@dataclass(frozen=True)
class Processed(Generic[R]):
    """An upload `process` accepted: the event's payload, the image id and what `process` made."""

    created: events.ObjectCreated
    image_id: str
    result: R


@dataclass(frozen=True)
class Finished:
    """The event is answered already: `reply` (image.rejected) or None (not an upload, or gone)."""

    reply: CloudEvent | None


def process_upload(
    event: CloudEvent,
    objects: ObjectStore,
    config: Settings,
    stage: str,
    source: str,
    process: Callable[[bytes, Limits], R],
) -> Processed[R] | Finished:
    """Fetch the upload and run `process(data, limits)` on it, timed and counted under `stage` (the
    function's name, also the stage an image.rejected names).

    Content `process` refuses (RejectedImage) is an outcome: an image.rejected reply, never a retry.
    A name no object can have (a key or bucket the store refuses) is refused at once (422, dead-
    lettered, never retried): no image can be made of it, and no record should be.
    """
    from pipeline.images import Limits, RejectedImage, check_size  # Pillow: image functions only

    created = payload_of(event, events.ObjectCreated)
    if created.bucket == config.variants_bucket or created.key.endswith("/"):
        log.info("ignored %s/%s: not an upload", created.bucket, created.key)
        return Finished(None)
    image_id = events.image_id(created.bucket, created.key)
    limits = Limits.from_settings(config)
    try:
        check_size(created.size, limits)
        with _IMAGE_WORK, metrics.image_processing_duration.labels(stage).time():
            data = objects.get(created.bucket, created.key)
            metrics.image_bytes.labels(stage, "read").inc(len(data))
            return Processed(created, image_id, process(data, limits))
    except ObjectNotFound:
        log.info("%s/%s is gone (deleted since the event): nothing to %s", created.bucket, created.key, stage)
        return Finished(None)
    except InvalidKey as exc:  # a name no object can have (a forged event): nothing to fetch, ever
        raise PermanentEventError(f"{event.type} names no object the store can hold: {exc}") from None
    except RejectedImage as exc:
        log.info("rejected %s/%s: %s", created.bucket, created.key, exc)
        rejected = events.ImageRejected(image_id, created.bucket, created.key, str(exc), stage)
        return Finished(image_reply(event, source, events.IMAGE_REJECTED, rejected, f"{stage}.rejected"))
