"""What the catalog does for each event type and each API route."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import flask

from eventing.cloudevent import CloudEvent
from functions.catalog.queries import CatalogReader, Listing
from functions.catalog.repository import CatalogWriter, UnstorableValue
from functions.context import Call, Context
from functions.replies import payload_of
from functions.runtime import json_response
from pipeline import events
from pipeline.events import is_image_id
from pipeline.minio_codec import sequencer_problem
from pipeline.ownership import owner_scope
from shared import metrics
from shared.db import engine
from shared.errors import NotFound, PermanentEventError
from shared.objectstore import ObjectNotFound
from shared.objectstore.factory import open_store
from shared.settings import Settings

log = logging.getLogger("datafrost.catalog")


NAME = "catalog"


C = TypeVar("C", events.ObjectCreated, events.ObjectRemoved)


@dataclass(frozen=True)
class CatalogDb:
    """The catalog's own database: events write through `writer`, the API reads through `reader`."""

    writer: CatalogWriter
    reader: CatalogReader


def open_catalog(config: Settings) -> CatalogDb:
    """Connects (and creates the schema) on first use: DATAFROST_CATALOG_DB, else SQLite."""
    writer = CatalogWriter(engine(config.database_url(NAME)))
    return CatalogDb(writer, CatalogReader(writer.engine))


def register_metrics(context: Context) -> None:
    """The `datafrost_catalog_images` gauge, read at scrape time (registered once per process)."""

    def images_by_status() -> dict[str, int]:
        try:
            return context.client(open_catalog).reader.count_by_status()
        except Exception as exc:  # a scrape must not fail with the database; no sample meanwhile
            log.warning("cannot count images for metrics: %s", exc)
            return {}

    metrics.register_gauge(
        metrics.CATALOG_IMAGES, "Images in the catalog by status.", "status", images_by_status
    )


def apply_event(event: CloudEvent, context: Context) -> None:
    """Record one event; data that does not fit its type or its columns (or names no object a store
    can hold), or that cannot be ordered, is refused for good (422)."""
    try:
        _record_event(event, context.client(open_catalog).writer)
    except UnstorableValue as exc:
        raise PermanentEventError(f"{event.type} data cannot be stored: {exc}") from None


def _object_change(event: CloudEvent, cls: type[C]) -> C:
    """The payload of an object event, whose sequencer must be plausible: one far ahead of now would
    outrank every later version of the key for good (a removal would hide its re-uploads)."""
    data = payload_of(event, cls)
    problem = sequencer_problem(data.sequencer, datetime.now(UTC)) if data.sequencer else None
    if problem is not None:
        raise PermanentEventError(f"{event.type} data cannot be ordered: {problem}")
    return data


def _record_event(event: CloudEvent, writer: CatalogWriter) -> None:
    if event.type == events.OBJECT_CREATED:
        created = _object_change(event, events.ObjectCreated)
        writer.object_created(events.image_id(created.bucket, created.key), created)
    elif event.type == events.OBJECT_REMOVED:
        removed = _object_change(event, events.ObjectRemoved)
        writer.removed(events.image_id(removed.bucket, removed.key), removed)
    elif event.type == events.IMAGE_ANALYZED:
        writer.analyzed(payload_of(event, events.ImageAnalyzed))
    elif event.type == events.IMAGE_THUMBNAILED:
        writer.thumbnailed(payload_of(event, events.ImageThumbnailed))
    elif event.type == events.IMAGE_REJECTED:
        writer.rejected(payload_of(event, events.ImageRejected))
    else:
        raise PermanentEventError(f"the catalog does not consume {event.type}")


def list_images(call: Call) -> flask.Response:
    owner, reader = owner_scope(call.identity), call.client(open_catalog).reader
    listing = Listing.from_args(call.request.args, owner)
    if listing.similar_to is not None:
        if reader.get(listing.similar_to, owner) is None:
            raise NotFound(f"no image {listing.similar_to}")
        similar, next_cursor = reader.similar(
            listing.similar_to, listing.max_distance, listing.limit, listing.filters, listing.similar_cursor
        )
        return json_response({"images": similar, "next_cursor": next_cursor})
    page, next_cursor = reader.page(listing.filters, listing.cursor, listing.limit)
    return json_response({"images": page, "next_cursor": next_cursor})


def _image_id(call: Call) -> str:
    """The image id in the path; one `image_id` could not have made names no image (404)."""
    image_id: str = call.params["image_id"]
    if not is_image_id(image_id):
        raise NotFound(f"no image {image_id}")
    return image_id


def show_image(call: Call) -> flask.Response:
    image_id = _image_id(call)
    record = call.client(open_catalog).reader.get(image_id, owner_scope(call.identity))
    if record is None:
        raise NotFound(f"no image {image_id}")
    return json_response(record)


def delete_image(call: Call) -> flask.Response:
    """Delete the original and every variant; the record is gone at once."""
    image_id, db = _image_id(call), call.client(open_catalog)
    reader, writer = db.reader, db.writer
    if reader.get(image_id, owner_scope(call.identity)) is None:
        raise NotFound(f"no image {image_id}")
    objects = reader.stored_objects(image_id)
    store = call.client(open_store)
    for bucket, key in objects:
        store.delete(bucket, key)
    with writer.engine.begin() as conn:
        writer.mark_deleted(conn, image_id, None)
    log.info("deleted image %s and its %d stored objects", image_id, len(objects))
    return flask.Response(status=204)


def variant_bytes(call: Call) -> flask.Response:
    image_id, name = _image_id(call), call.params["name"]
    variant = call.client(open_catalog).reader.variant(image_id, name, owner_scope(call.identity))
    if variant is None:
        raise NotFound(f"image {image_id} has no variant {name!r}")
    try:
        data = call.client(open_store).get(variant["bucket"], variant["key"])
    except ObjectNotFound:
        raise NotFound(f"variant {name!r} of image {image_id} is missing from the store") from None
    content_type = f"image/{variant['format'].lower()}"
    return flask.Response(data, content_type=content_type, headers={"Cache-Control": "private, max-age=3600"})
