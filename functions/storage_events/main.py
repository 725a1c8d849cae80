"""storage-events: MinIO's webhook target; bucket notifications in, object CloudEvents out.

Consumes: MinIO bucket notifications, the `{"EventName", "Key", "Records"}` JSON MinIO's webhook
target POSTs, or the same body from MinIO's AMQP target wrapped by a Knative RabbitmqSource
(`dev.knative.rabbitmq.event`, POSTed to `/rabbitmq`; locally `localplatform.minio_amqp` reads the queue).
Emits: `io.datafrost.object.created` and `io.datafrost.object.removed` into the broker at K_SINK,
with extension `bucket` and `subject` = the decoded key (`pipeline.minio_codec`).
Idempotent: each CloudEvent id is derived from its notification record (bucket, key, version or
eTag, sequencer, event name), so a notification MinIO sends again (its `queue_dir` keeps events
until a 2xx) yields the same ids, and consumers dedupe on (source, id).

A notification's claims are not facts: each record is checked before anything is published.
Records no real object can have caused (a key the stores refuse, a sequencer that is no time or
lies ahead: `pipeline.minio_codec`) are skipped; a creation is published only when the store holds
the object with the notified eTag (and carries the store's size, content type and metadata), a
removal only when the object is gone (`verify`). Skipped records are logged and listed in the answer.
Keys under `.datafrost/` are DataFrost's own and never published as object events: the creation of a
probe (`.datafrost/probe/...`, which `datafrost dev` writes at start to learn whether the store
notifies at all) is published as `io.datafrost.storage.probed`, which no pipeline trigger consumes;
anything else there is skipped.

HTTP: `POST /`: 200 `{"published": [ids], "skipped": [{"record", "key", "reason"}]}`; 400 for a
malformed notification; 401 without `Authorization: Bearer <DATAFROST_STORAGE_EVENTS_TOKEN>` when that
token is set (`datafrost dev` always sets one); 413 over the size limit or over MAX_RECORDS records;
429 with Retry-After past the client's rate (DATAFROST_STORAGE_EVENTS_RATE_PER_MINUTE, _BURST; the
client is the last X-Forwarded-For hop, which the gateway sets, else the peer); 503 when the store
or the broker cannot be reached (MinIO retries every non-2xx, the 429 too).
`HEAD /`: 200, MinIO's liveness check when the target is configured (it reveals nothing).
`POST /rabbitmq` (service role): a RabbitmqSource's binary CloudEvent; the same answers (no rate
limit: only the in-cluster source reaches it).
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
from functions.storage_events.verify import NotInStore, verified_change
from pipeline.events import (
    OBJECT_CREATED,
    OBJECT_REMOVED,
    PROBE_PREFIX,
    RESERVED_PREFIX,
    STORAGE_PROBED,
    ObjectCreated,
    ObjectRemoved,
    is_reserved_key,
)
from pipeline.minio_codec import SkippedRecord, TooManyRecords, decode_notification, encode_key, object_event
from shared import safe_json, tracing
from shared.auth.identity import SERVICE
from shared.objectstore import ObjectStore
from shared.objectstore.factory import open_store
from shared.rate_limit import ClientRateLimiter
from shared.settings import Settings

log = logging.getLogger("datafrost.storage-events")
RESERVED_SKIP = f"keys under {RESERVED_PREFIX} are DataFrost's own, never images"


def is_probe(change: ObjectCreated | ObjectRemoved) -> bool:
    """The creation of a notification probe (`datafrost dev` writes one at start)."""
    return isinstance(change, ObjectCreated) and change.key.startswith(PROBE_PREFIX)


def authorized(header: str | None, token: str | None) -> bool:
    """No token configured: open. Otherwise exactly `Bearer <token>`, compared in constant time."""
    if token is None:
        return True
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def notification_rate(config: Settings) -> ClientRateLimiter:
    """This process's token buckets, one per client (made once, by `call.client`)."""
    return ClientRateLimiter(config.storage_events_rate)


def client_of(request: flask.Request) -> str:
    """Who sent the request: the last X-Forwarded-For hop (the gateway or Envoy sets it), else the peer."""
    forwarded = request.headers.get("X-Forwarded-For", "").rsplit(",", 1)[-1].strip()
    return forwarded or request.remote_addr or ""


def receive_webhook(call: Call) -> flask.Response:
    request, config = call.request, call.settings
    wait = call.client(notification_rate).admit(client_of(request))
    if wait:
        response = error_response(f"too many notifications from this client; retry in {wait} s", 429)
        response.headers["Retry-After"] = str(wait)
        return response
    if not authorized(request.headers.get("Authorization"), config.storage_events_token):
        response = error_response("a valid 'Authorization: Bearer <token>' header is required", 401)
        response.headers["WWW-Authenticate"] = 'Bearer realm="storage-events"'
        return response
    body = request.get_data()
    if len(body) > config.max_event_bytes:
        return error_response(f"notification over the {config.max_event_bytes}-byte limit", 413)
    try:
        return _publish(safe_json.loads(body), call)
    except TooManyRecords as exc:
        return error_response(str(exc), 413)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError and JsonTooDeep are ValueErrors too
        return error_response(f"not a MinIO notification: {exc}", 400)


def receive_source_event(call: Call) -> flask.Response:
    request, config = call.request, call.settings
    body = request.get_data()
    if len(body) > config.max_event_bytes:
        return error_response(f"event over the {config.max_event_bytes}-byte limit", 413)
    try:  # InvalidEvent is a ValueError too
        (event,) = parse_http(request.headers, body, max_bytes=config.max_event_bytes, allow_batch=False)
        return _publish(notification_of(event), call)
    except TooManyRecords as exc:
        return error_response(str(exc), 413)
    except ValueError as exc:
        return error_response(f"not a RabbitmqSource event with a MinIO notification: {exc}", 400)


def _trace_parent(event: CloudEvent) -> str | None:
    """The object's own trace when the uploader left one in its metadata, else this request's."""
    metadata = (event.json() or {}).get("user_metadata") or {}
    uploaded = next((v for k, v in metadata.items() if k.lower() == tracing.TRACEPARENT), None)
    return uploaded if tracing.parse(uploaded) is not None else event.get(tracing.TRACEPARENT)


def _publish(notification: Any, call: Call) -> flask.Response:
    """Decode the notification (ValueError when malformed), check each change against the store and
    send the ones it bears out to the broker."""
    config = call.settings
    decoded = decode_notification(notification)
    skipped = list(decoded.skipped)
    if decoded.changes and not config.sink:
        return error_response("K_SINK (the broker ingress) is not set", 503)
    store: ObjectStore | None = call.client(open_store) if decoded.changes else None
    events = []
    for index, change in decoded.changes:
        assert store is not None
        probe = is_probe(change)
        if is_reserved_key(change.key) and not probe:
            skipped.append(SkippedRecord(index, encode_key(change.key), RESERVED_SKIP))
            continue
        try:
            event = object_event(verified_change(change, store))
            events.append(event.with_attributes(type=STORAGE_PROBED) if probe else event)
        except NotInStore as exc:
            skipped.append(SkippedRecord(index, encode_key(change.key), str(exc)))
        except (
            Exception
        ) as exc:  # the store is unreachable or failing (OSError, S3Error, urllib3): MinIO resends
            log.warning("cannot check %s/%s against the store: %s", change.bucket, change.key, exc)
            return error_response("the object store cannot be reached; send the notification again", 503)
    for record in skipped:
        log.warning("skipped record %d (key %r): %s", record.index, record.key, record.reason)
    published = []
    for event in events:
        # the publish is a hop of the object's trace: the event carries it, and so do the log lines
        with tracing.continued(_trace_parent(event), f"publish {event.type}") as hop:
            try:
                send_event(config.sink or "", event.with_attributes(**{tracing.TRACEPARENT: hop}))
            except SendError as exc:
                log.warning("broker did not take %s: %s", event.id, exc)
                return error_response("the broker did not take the events; send the notification again", 503)
            log.info("published %s for %s", event.type, event.subject)
            published.append(event.id)
    return json_response({"published": published, "skipped": [r.as_json() for r in skipped]})


def liveness(call: Call) -> flask.Response:
    """MinIO's check when the webhook target is configured: it reveals nothing."""
    return flask.Response(status=200)


SPEC = FunctionSpec(
    name="storage-events",
    description="MinIO webhook target: bucket notifications in, object CloudEvents out",
    emits=(OBJECT_CREATED, OBJECT_REMOVED, STORAGE_PROBED),
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
