"""dead-letters: keeps every event a trigger could not deliver, lists them and replays them.

Consumes: events POSTed by the broker as a trigger's dead-letter sink (any type, with Knative's
`knativeerrordest`, `knativeerrorcode`, `knativeerrordata` extensions).
Emits: on replay, the original event (error extensions removed) back into the broker (K_SINK).
Idempotent: a dead letter is keyed by (source, id, destination); the same one stored twice is kept once.

HTTP: `GET /` lists (`?type=`, `?limit=`), `GET /<id>` shows one, `POST /<id>/replay` re-publishes it,
`DELETE /<id>` forgets it.
"""

from __future__ import annotations

import base64

import flask

from eventing.client import SendError, send_event
from eventing.cloudevent import CloudEvent
from functions.dead_letters.store import DeadLetterStore
from functions.runtime import cloudevent_function, json_response
from functions.spec import DEAD_LETTERS_FUNCTION, FunctionSpec
from shared.errors import HttpError, NotFound
from shared.lazy import once
from shared.settings import settings

SPEC = FunctionSpec(
    name=DEAD_LETTERS_FUNCTION,
    kind="cloudevent",
    description="Keeps undeliverable events; lists and replays them",
    consumes=("*",),
    uses_sink=True,  # replay
)


@once
def store() -> DeadLetterStore:
    return DeadLetterStore(settings().database_url(SPEC.name))


def on_event(event: CloudEvent) -> None:
    store().add(event)


def _replay(letter_id: str) -> flask.Response:
    letter = store().get(letter_id)
    if letter is None:
        raise NotFound(f"no dead letter {letter_id}")
    sink = settings().sink
    if not sink:
        raise HttpError("replay needs K_SINK (the broker ingress) to be set", 503)
    try:
        send_event(sink, letter.event)
    except SendError as exc:
        raise HttpError(f"replay failed: {exc}", 502) from None
    store().mark_replayed(letter_id)
    return json_response({"replayed": letter_id, "event_id": letter.event.id})


def _show(letter_id: str) -> flask.Response:
    letter = store().get(letter_id)
    if letter is None:
        raise NotFound(f"no dead letter {letter_id}")
    data = letter.event.data
    return json_response(
        {
            **letter.summary(),
            "attributes": dict(letter.event.attributes),
            "data_base64": base64.b64encode(data).decode() if data is not None else None,
        }
    )


def api(request: flask.Request) -> flask.Response:
    parts = [p for p in request.path.split("/") if p]
    if not parts:
        if request.method == "GET":
            limit = request.args.get("limit", "100")
            if not limit.isdigit() or not 1 <= int(limit) <= 1000:
                raise HttpError("limit must be an integer from 1 to 1000")
            letters = store().list(int(limit), request.args.get("type"))
            return json_response({"dead_letters": [d.summary() for d in letters]})
    elif len(parts) == 1 and request.method == "GET":
        return _show(parts[0])
    elif len(parts) == 1 and request.method == "DELETE":
        if not store().delete(parts[0]):
            raise NotFound(f"no dead letter {parts[0]}")
        return flask.Response(status=204)
    elif len(parts) == 2 and parts[1] == "replay" and request.method == "POST":
        return _replay(parts[0])
    raise HttpError(f"no route for {request.method} {request.path}", 404)


# No dedupe window: the same event dead-lettered by two triggers is two dead letters.
handle = cloudevent_function(SPEC, on_event, api, dedupe=False)
