"""catalog: the searchable record of every image, in its own database (SQLite, or PostgreSQL by URL).

Consumes: io.datafrost.object.created and .removed (the uploads bucket), io.datafrost.image.analyzed,
.thumbnailed and .rejected, in any order; dev.knative.sources.ping (a PingSource; locally `datafrost
dev` pings): a reconciler pass (`reconcile`).
Emits: io.datafrost.object.created and .removed only as the reconciler's repairs, into the broker at
K_SINK (deleting an image deletes its objects; the store's notifications say so).
Idempotent: each event type writes its own columns by image id; status is derived from them; a
tombstone keeps late events of a removed image from reviving it. A reconciler pass emits the same
event ids when repeated (a hash of bucket, key, eTag and the record's repair generation).

HTTP (through the gateway at /catalog; callers see only their own images, admin sees all, a
foreign id is a 404): GET /images (viewer; filters: status, format, camera, filename (substrings),
sha256, min_bytes, max_bytes, min_width, max_width, min_height, max_height, taken_after, taken_before;
limit, cursor; similar_to=<id> with max_distance: near-duplicates nearest first, with the filters,
paged by cursor too; any other parameter is a 400 naming it), GET /images/<id> (viewer),
DELETE /images/<id> (editor), GET /images/<id>/variants/<name> (viewer); POST /reconcile (admin):
a reconciler pass now, answered with its summary; GET /reconcile (admin): the last pass's summary.
A record carries the uploader's `filename` and `duplicate_of` (the owner's earliest record with the
same sha256).
"""

from __future__ import annotations

from eventing.cloudevent import CloudEvent
from eventing.trigger import DeliverySpec
from functions.catalog import handlers, reconciler
from functions.context import Context
from functions.runtime import target
from functions.spec import SMALL_JSON_BODY, UPLOADS_BUCKET, FunctionSpec, TriggerSpec, route
from pipeline import events
from shared.auth.identity import ADMIN, EDITOR, VIEWER

# A pass can take a while over a large bucket; a ping that fails is not worth a dead letter (the next
# one comes), nor many retries.
PING_DELIVERY = DeliverySpec(retry=2, timeout=300.0)


def on_event(event: CloudEvent, context: Context) -> None:
    if event.type == events.PING:
        reconciler.on_ping(event, context)
    else:
        handlers.apply_event(event, context)


def on_start(context: Context) -> None:
    handlers.register_metrics(context)
    reconciler.register_metrics(context)


SPEC = FunctionSpec(
    name=handlers.NAME,
    description="Catalog of every image: REST API over its own database",
    consumes=(
        events.OBJECT_CREATED,
        events.OBJECT_REMOVED,
        events.IMAGE_ANALYZED,
        events.IMAGE_THUMBNAILED,
        events.IMAGE_REJECTED,
        events.PING,
    ),
    emits=(events.OBJECT_CREATED, events.OBJECT_REMOVED),
    triggers=(
        TriggerSpec("created", {"type": events.OBJECT_CREATED, events.BUCKET_EXTENSION: UPLOADS_BUCKET}),
        TriggerSpec("removed", {"type": events.OBJECT_REMOVED, events.BUCKET_EXTENSION: UPLOADS_BUCKET}),
        TriggerSpec("analyzed", {"type": events.IMAGE_ANALYZED}),
        TriggerSpec("thumbnailed", {"type": events.IMAGE_THUMBNAILED}),
        TriggerSpec("rejected", {"type": events.IMAGE_REJECTED}),
        TriggerSpec("reconcile", {"type": events.PING}, delivery=PING_DELIVERY, dead_letters=False),
    ),
    on_event=on_event,
    on_start=on_start,
    routes=(
        route("GET", "/images", VIEWER, handlers.list_images),
        route("GET", "/images/<image_id>", VIEWER, handlers.show_image),
        route("DELETE", "/images/<image_id>", EDITOR, handlers.delete_image),
        route("GET", "/images/<image_id>/variants/<name>", VIEWER, handlers.variant_bytes),
        route("POST", "/reconcile", ADMIN, reconciler.reconcile_now, max_body=SMALL_JSON_BODY),
        route("GET", "/reconcile", ADMIN, reconciler.last_pass),
    ),
    database=True,
    uses_sink=True,  # the reconciler's repairs
)
handle = target(SPEC)
