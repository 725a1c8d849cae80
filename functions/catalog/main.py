"""catalog: the searchable record of every image, in its own database (SQLite, or PostgreSQL by URL).

Consumes: io.datafrost.object.created and .removed (bucket `uploads`), io.datafrost.image.analyzed,
.thumbnailed and .rejected, in any order.
Emits: nothing (deleting an image deletes its objects; the store's notifications say so).
Idempotent: each event type writes its own columns by image id; status is derived from them; a
tombstone keeps late events of a removed image from reviving it.

HTTP (through the gateway at /catalog): GET /images (filters: status, format, camera, min_bytes,
max_bytes, min_width, max_width, min_height, max_height, taken_after, taken_before; limit, cursor;
similar_to=<id> with max_distance), GET /images/<id>, DELETE /images/<id>,
GET /images/<id>/variants/<name>.
"""

from __future__ import annotations

import flask

from functions.catalog import handlers
from functions.identity import authenticate, owner_scope
from functions.runtime import cloudevent_function
from functions.spec import FunctionSpec, TriggerSpec
from pipeline import events
from shared.errors import HttpError

UPLOADS = "uploads"

SPEC = FunctionSpec(
    name="catalog",
    kind="cloudevent",
    description="Catalog of every image: REST API over its own database",
    consumes=(
        events.OBJECT_CREATED,
        events.OBJECT_REMOVED,
        events.IMAGE_ANALYZED,
        events.IMAGE_THUMBNAILED,
        events.IMAGE_REJECTED,
    ),
    triggers=(
        TriggerSpec("created", {"type": events.OBJECT_CREATED, events.BUCKET_EXTENSION: UPLOADS}),
        TriggerSpec("removed", {"type": events.OBJECT_REMOVED, events.BUCKET_EXTENSION: UPLOADS}),
        TriggerSpec("analyzed", {"type": events.IMAGE_ANALYZED}),
        TriggerSpec("thumbnailed", {"type": events.IMAGE_THUMBNAILED}),
        TriggerSpec("rejected", {"type": events.IMAGE_REJECTED}),
    ),
)


def api(request: flask.Request) -> flask.Response:
    """The REST API. Callers see only their own images (admin sees all); a foreign id is a 404."""
    parts = [p for p in request.path.split("/") if p]
    method = request.method
    if parts == ["images"] and method == "GET":
        return handlers.list_images(request, owner_scope(authenticate(request, "viewer")))
    if len(parts) == 2 and parts[0] == "images" and method == "GET":
        return handlers.show_image(parts[1], owner_scope(authenticate(request, "viewer")))
    if len(parts) == 2 and parts[0] == "images" and method == "DELETE":
        return handlers.delete_image(parts[1], owner_scope(authenticate(request, "editor")))
    if len(parts) == 4 and parts[0] == "images" and parts[2] == "variants" and method == "GET":
        return handlers.variant_bytes(parts[1], parts[3], owner_scope(authenticate(request, "viewer")))
    raise HttpError(f"no route for {method} {request.path}", 404)


handle = cloudevent_function(SPEC, handlers.apply_event, api, on_start=handlers.register_metrics)
