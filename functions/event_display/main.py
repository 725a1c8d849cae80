"""event-display: logs every CloudEvent it receives and shows the latest ones (Knative's sample sink).

Consumes: any event a trigger sends it (`datafrost trigger create ... --sink .../event-display/`).
Emits: nothing.
Idempotent: it only logs and remembers; a redelivered event is shown once (the runtime's dedupe).

HTTP: `POST /` takes a CloudEvent (service role); `GET /events` (viewer) lists the last 100 received
by this process.
"""

from __future__ import annotations

import base64
import logging
from collections import deque

import flask

from eventing.cloudevent import CloudEvent
from functions.context import Call, Context
from functions.runtime import json_response, target
from functions.spec import FunctionSpec, route
from shared.auth.identity import VIEWER

log = logging.getLogger("datafrost.event-display")
_recent: deque[CloudEvent] = deque(maxlen=100)


def on_event(event: CloudEvent, context: Context) -> None:
    _recent.append(event)
    log.info("received %s from %s (%d bytes)", event.type, event.source, len(event.data or b""))


def _as_json(event: CloudEvent) -> dict[str, object]:
    data = event.data or b""
    return {"attributes": dict(event.attributes), "data_base64": base64.b64encode(data).decode()}


def recent_events(call: Call) -> flask.Response:
    return json_response({"events": [_as_json(e) for e in _recent]})


SPEC = FunctionSpec(
    name="event-display",
    description="Logs and lists the CloudEvents sent to it",
    consumes=("*",),
    on_event=on_event,
    routes=(route("GET", "/events", VIEWER, recent_events),),
)
handle = target(SPEC)
