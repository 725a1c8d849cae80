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
`POST /rabbitmq` (service role): a RabbitmqSource's binary CloudEvent; the same answers.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

import flask

from eventing.client import SendError, send_event
from eventing.cloudevent import CloudEvent
from eventing.http_codec import parse_http
from functions.context import Call
from functions.runtime import error_response, json_response, target
from functions.spec import PUBLIC, FunctionSpec, Serves, route
from functions.storage_events.rabbitmq_source import notification_of
from pipeline.events import OBJECT_CREATED, OBJECT_REMOVED
from pipeline.minio_codec import cloudevents_from_notification
from shared import safe_json, tracing
from shared.auth.identity import SERVICE
from shared.settings import Settings

log = logging.getLogger("datafrost.storage-events")


def authorized(header: str | None, token: str | None) -> bool:
    """No token configured: open. Otherwise exactly `Bearer <token>`, compared in constant time."""
    if token is None:
        return True
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def receive_webhook(call: Call) -> flask.Response:
    request, config = call.request, call.settings
    if not authorized(request.headers.get("Authorization"), config.storage_events_token):
        response = error_response("a valid 'Authorization: Bearer <token>' header is required", 401)
        response.headers["WWW-Authenticate"] = 'Bearer realm="storage-events"'
        return response
    body = request.get_data()
    if len(body) > config.max_event_bytes:
        return error_response(f"notification over the {config.max_event_bytes}-byte limit", 413)
    try:
        return _publish(safe_json.loads(body), config)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError and JsonTooDeep are ValueErrors too
        return error_response(f"not a MinIO notification: {exc}", 400)


def receive_source_event(call: Call) -> flask.Response:
    request, config = call.request, call.settings
    body = request.get_data()
    if len(body) > config.max_event_bytes:
        return error_response(f"event over the {config.max_event_bytes}-byte limit", 413)
    try:  # InvalidEvent is a ValueError too
        (event,) = parse_http(request.headers, body, max_bytes=config.max_event_bytes, allow_batch=False)
        return _publish(notification_of(event), config)
    except ValueError as exc:
        return error_response(f"not a RabbitmqSource event with a MinIO notification: {exc}", 400)


def _trace_parent(event: CloudEvent) -> str | None:
    """The object's own trace when the uploader left one in its metadata, else this request's."""
    metadata = (event.json() or {}).get("user_metadata") or {}
    uploaded = next((v for k, v in metadata.items() if k.lower() == tracing.TRACEPARENT), None)
    return uploaded if tracing.parse(uploaded) is not None else event.get(tracing.TRACEPARENT)


def _publish(notification: Any, config: Settings) -> flask.Response:
    """Decode the notification (ValueError when malformed) and send its object events to the broker."""
    events = cloudevents_from_notification(notification)
    sink = config.sink
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


def liveness(call: Call) -> flask.Response:
    """MinIO's check when the webhook target is configured: it reveals nothing."""
    return flask.Response(status=200)


SPEC = FunctionSpec(
    name="storage-events",
    description="MinIO webhook target: bucket notifications in, object CloudEvents out",
    emits=(OBJECT_CREATED, OBJECT_REMOVED),
    routes=(
        # MinIO's webhook sends a static token, never a JWT: the handler checks that token itself
        # (DATAFROST_STORAGE_EVENTS_TOKEN)
        route("POST", "/", PUBLIC, receive_webhook, serves=Serves.STORAGE_WEBHOOK),
        route("HEAD", "/", PUBLIC, liveness),
        route("POST", "/rabbitmq", SERVICE, receive_source_event, serves=Serves.STORAGE_AMQP),
    ),
    uses_sink=True,
)
handle = target(SPEC)
