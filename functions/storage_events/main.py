"""storage-events: MinIO's webhook target; bucket notifications in, object CloudEvents out.

Consumes: MinIO bucket notifications, the `{"EventName", "Key", "Records"}` JSON MinIO's webhook
target POSTs (the same body its AMQP target publishes; see `eventing.minio_amqp` for that path).
Emits: `io.datafrost.object.created` and `io.datafrost.object.removed` into the broker at K_SINK,
with extension `bucket` and `subject` = the decoded key (`eventing.minio_codec`).
Idempotent: each CloudEvent id is derived from its notification record (bucket, key, version or
eTag, sequencer, event name), so a notification MinIO sends again (its `queue_dir` keeps events
until a 2xx) yields the same ids, and consumers dedupe on (source, id).

HTTP: `POST /`: 200 `{"published": [ids]}`; 400 for a malformed notification; 401 without
`Authorization: Bearer <DATAFROST_STORAGE_EVENTS_TOKEN>` when that token is set; 413 over the size
limit; 503 when the broker does not take every event (MinIO retries the whole notification).
`HEAD /`: 200, MinIO's liveness check when the target is configured (it reveals nothing).
"""

from __future__ import annotations

import hmac
import json
import logging

import flask

from eventing.client import SendError, send_event
from eventing.minio_codec import cloudevents_from_notification
from functions.runtime import error_response, http_function, json_response
from functions.spec import FunctionSpec
from shared.events import OBJECT_CREATED, OBJECT_REMOVED
from shared.settings import settings

SPEC = FunctionSpec(
    name="storage-events",
    kind="http",
    description="MinIO webhook target: bucket notifications in, object CloudEvents out",
    emits=(OBJECT_CREATED, OBJECT_REMOVED),
)
log = logging.getLogger("datafrost.storage-events")


def authorized(header: str | None, token: str | None) -> bool:
    """No token configured: open. Otherwise exactly `Bearer <token>`, compared in constant time."""
    if token is None:
        return True
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def _receive(request: flask.Request) -> flask.Response:
    if not authorized(request.headers.get("Authorization"), settings().storage_events_token):
        response = error_response("a valid 'Authorization: Bearer <token>' header is required", 401)
        response.headers["WWW-Authenticate"] = 'Bearer realm="storage-events"'
        return response
    body = request.get_data()
    if len(body) > settings().max_event_bytes:
        return error_response(f"notification over the {settings().max_event_bytes}-byte limit", 413)
    try:
        events = cloudevents_from_notification(json.loads(body))
    except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors too
        return error_response(f"not a MinIO notification: {exc}", 400)
    sink = settings().sink
    if events and not sink:
        return error_response("K_SINK (the broker ingress) is not set", 503)
    for event in events:
        try:
            send_event(sink or "", event)
        except SendError as exc:
            log.warning("broker did not take %s: %s", event.id, exc)
            return error_response("the broker did not take the events; send the notification again", 503)
        log.info("published %s for %s", event.type, event.subject)
    return json_response({"published": [event.id for event in events]})


def on_request(request: flask.Request) -> flask.Response:
    if request.path != "/":
        return error_response(f"no route for {request.method} {request.path}", 404)
    if request.method == "HEAD":
        return flask.Response(status=200)
    if request.method == "POST":
        return _receive(request)
    return error_response("storage-events takes MinIO notifications by POST (HEAD to check)", 405)


handle = http_function(SPEC, on_request)
