"""storage-events: MinIO's webhook target; bucket notifications in, object CloudEvents out.

Consumes: MinIO bucket notifications, the `{"EventName", "Key", "Records"}` JSON MinIO's webhook
target POSTs, or the same body from MinIO's AMQP target wrapped by a Knative RabbitmqSource
(`dev.knative.rabbitmq.event`, POSTed to `/rabbitmq`; locally `localplatform.minio_amqp` reads the queue).
Emits: `io.datafrost.object.created` and `io.datafrost.object.removed` into the broker at K_SINK,
with extension `bucket` and `subject` = the decoded key (`pipeline.minio_codec`).
Idempotent: each CloudEvent id is derived from its notification record (bucket, key, version or
eTag, sequencer, event name), so a notification MinIO sends again (its `queue_dir` keeps events
until a 2xx) yields the same ids, and consumers dedupe on (source, id).

HTTP: `POST /`: 200 `{"published": [ids]}`; 400 for a malformed notification; 401 without
`Authorization: Bearer <DATAFROST_STORAGE_EVENTS_TOKEN>` when that token is set; 413 over the size
limit; 503 when the broker does not take every event (MinIO retries the whole notification).
`HEAD /`: 200, MinIO's liveness check when the target is configured (it reveals nothing).
`POST /rabbitmq`: a RabbitmqSource's binary CloudEvent; the same answers, but no static token: the
route needs the service role at the gateway, and the source reaches it cluster-local.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

import flask

from eventing.client import SendError, send_event
from eventing.cloudevent import CloudEvent
from eventing.http_codec import parse_http
from functions.runtime import error_response, http_function, json_response
from functions.spec import FunctionSpec
from functions.storage_events.rabbitmq_source import notification_of
from pipeline.events import OBJECT_CREATED, OBJECT_REMOVED
from pipeline.minio_codec import cloudevents_from_notification
from shared import tracing
from shared.settings import settings

SPEC = FunctionSpec(
    name="storage-events",
    kind="http",
    description="MinIO webhook target: bucket notifications in, object CloudEvents out",
    emits=(OBJECT_CREATED, OBJECT_REMOVED),
    uses_sink=True,
)
log = logging.getLogger("datafrost.storage-events")


def authorized(header: str | None, token: str | None) -> bool:
    """No token configured: open. Otherwise exactly `Bearer <token>`, compared in constant time."""
    if token is None:
        return True
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def _receive_webhook(request: flask.Request) -> flask.Response:
    if not authorized(request.headers.get("Authorization"), settings().storage_events_token):
        response = error_response("a valid 'Authorization: Bearer <token>' header is required", 401)
        response.headers["WWW-Authenticate"] = 'Bearer realm="storage-events"'
        return response
    body = request.get_data()
    if len(body) > settings().max_event_bytes:
        return error_response(f"notification over the {settings().max_event_bytes}-byte limit", 413)
    try:
        return _publish(json.loads(body))
    except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors too
        return error_response(f"not a MinIO notification: {exc}", 400)


def _receive_source_event(request: flask.Request) -> flask.Response:
    body = request.get_data()
    if len(body) > settings().max_event_bytes:
        return error_response(f"event over the {settings().max_event_bytes}-byte limit", 413)
    try:  # InvalidEvent is a ValueError too
        (event,) = parse_http(request.headers, body, max_bytes=settings().max_event_bytes, allow_batch=False)
        return _publish(notification_of(event))
    except ValueError as exc:
        return error_response(f"not a RabbitmqSource event with a MinIO notification: {exc}", 400)


def _trace_parent(event: CloudEvent) -> str | None:
    """The object's own trace when the uploader left one in its metadata, else this request's."""
    metadata = (event.json() or {}).get("user_metadata") or {}
    uploaded = next((v for k, v in metadata.items() if k.lower() == tracing.TRACEPARENT), None)
    return uploaded if tracing.parse(uploaded) is not None else event.get(tracing.TRACEPARENT)


def _publish(notification: Any) -> flask.Response:
    """Decode the notification (ValueError when malformed) and send its object events to the broker."""
    events = cloudevents_from_notification(notification)
    sink = settings().sink
    if events and not sink:
        return error_response("K_SINK (the broker ingress) is not set", 503)
    published = []
    for event in events:
        # the publish is a hop of the object's trace: the event carries it, and so do the log lines
        with tracing.continued(_trace_parent(event), f"publish {event.type}") as hop:
            try:
                send_event(sink or "", event.with_attributes(**{tracing.TRACEPARENT: hop}))
            except SendError as exc:
                log.warning("broker did not take %s: %s", event.id, exc)
                return error_response("the broker did not take the events; send the notification again", 503)
            log.info("published %s for %s", event.type, event.subject)
            published.append(event.id)
    return json_response({"published": published})


def on_request(request: flask.Request) -> flask.Response:
    if request.path == "/rabbitmq":
        if request.method != "POST":
            return error_response("/rabbitmq takes a RabbitmqSource's CloudEvents by POST", 405)
        return _receive_source_event(request)
    if request.path != "/":
        return error_response(f"no route for {request.method} {request.path}", 404)
    if request.method == "HEAD":
        return flask.Response(status=200)
    if request.method == "POST":
        return _receive_webhook(request)
    return error_response("storage-events takes MinIO notifications by POST (HEAD to check)", 405)


handle = http_function(SPEC, on_request)
