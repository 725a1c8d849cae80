"""catalog: the searchable record of every image, in its own database (SQLite, or PostgreSQL by URL).

Consumes: io.datafrost.object.created and .removed (the uploads bucket), io.datafrost.image.analyzed,
.thumbnailed and .rejected, in any order.
Emits: nothing (deleting an image deletes its objects; the store's notifications say so).
Idempotent: each event type writes its own columns by image id; status is derived from them; a
tombstone keeps late events of a removed image from reviving it.

HTTP (through the gateway at /catalog; callers see only their own images, admin sees all, a
foreign id is a 404): GET /images (viewer; filters: status, format, camera, filename (substrings),
sha256, min_bytes, max_bytes, min_width, max_width, min_height, max_height, taken_after, taken_before;
limit, cursor; similar_to=<id> with max_distance: near-duplicates nearest first, with the filters,
paged by cursor too; any other parameter is a 400 naming it), GET /images/<id> (viewer),
DELETE /images/<id> (editor), GET /images/<id>/variants/<name> (viewer). A record carries the
uploader's `filename` and `duplicate_of` (the owner's earliest record with the same sha256).
"""

from __future__ import annotations

from functions.catalog import handlers
from functions.runtime import target
from functions.spec import UPLOADS_BUCKET, FunctionSpec, TriggerSpec, route
from pipeline import events
from shared.auth.identity import EDITOR, VIEWER

SPEC = FunctionSpec(
    name=handlers.NAME,
    description="Catalog of every image: REST API over its own database",
    consumes=(
        events.OBJECT_CREATED,
        events.OBJECT_REMOVED,
        events.IMAGE_ANALYZED,
        events.IMAGE_THUMBNAILED,
        events.IMAGE_REJECTED,
    ),
    triggers=(
        TriggerSpec("created", {"type": events.OBJECT_CREATED, events.BUCKET_EXTENSION: UPLOADS_BUCKET}),
        TriggerSpec("removed", {"type": events.OBJECT_REMOVED, events.BUCKET_EXTENSION: UPLOADS_BUCKET}),
        TriggerSpec("analyzed", {"type": events.IMAGE_ANALYZED}),
        TriggerSpec("thumbnailed", {"type": events.IMAGE_THUMBNAILED}),
        TriggerSpec("rejected", {"type": events.IMAGE_REJECTED}),
    ),
    on_event=handlers.apply_event,
    on_start=handlers.register_metrics,
    routes=(
        route("GET", "/images", VIEWER, handlers.list_images),
        route("GET", "/images/<image_id>", VIEWER, handlers.show_image),
        route("DELETE", "/images/<image_id>", EDITOR, handlers.delete_image),
        route("GET", "/images/<image_id>/variants/<name>", VIEWER, handlers.variant_bytes),
    ),
    database=True,
)
handle = target(SPEC)
