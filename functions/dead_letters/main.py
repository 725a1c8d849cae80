"""dead-letters: keeps every event a trigger could not deliver, lists them and replays them.

Consumes: events POSTed by the broker as a trigger's dead-letter sink (any type, with Knative's
`knativeerrordest`, `knativeerrorcode`, `knativeerrordata` extensions).
Emits: on replay, the original event (error extensions removed) back into the broker (K_SINK).
Idempotent: a dead letter is keyed by (source, id, destination); the same one stored twice is kept once.

HTTP (admin role, checked here whatever the gateway decided): `GET /` lists (`?type=`, `?limit=`),
`GET /<id>` shows one, `POST /<id>/replay` re-publishes it, `DELETE /<id>` forgets it.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass

import flask

from eventing.client import SendError, send_event
from eventing.cloudevent import CloudEvent
from functions.context import Call, Context
from functions.dead_letters.store import DeadLetterStore, dead_letters, is_letter_id
from functions.runtime import json_response, target
from functions.spec import FunctionSpec, route
from shared import params
from shared.auth.identity import ADMIN
from shared.errors import HttpError, NotFound
from shared.settings import Settings
from shared.sql_values import column_length

NAME = "dead-letters"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def open_letters(config: Settings) -> DeadLetterStore:
    return DeadLetterStore(config.database_url(NAME))


def on_event(event: CloudEvent, context: Context) -> None:
    context.client(open_letters).add(event)


@dataclass(frozen=True)
class LetterQuery:
    """GET /'s parameters: how many dead letters, of which event type."""

    limit: int = DEFAULT_LIMIT
    event_type: str | None = None

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> LetterQuery:
        limit = params.optional_integer(args, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        return cls(limit, params.optional_text(args, "type", column_length(dead_letters.c.event_type)))


def list_letters(call: Call) -> flask.Response:
    query = LetterQuery.from_args(call.request.args)
    letters = call.client(open_letters).list(query.limit, query.event_type)
    return json_response({"dead_letters": [d.summary() for d in letters]})


def _letter_id(call: Call) -> str:
    """The dead letter's id in the path; text no id looks like names no dead letter (404)."""
    letter_id: str = call.params["letter_id"]
    if not is_letter_id(letter_id):
        raise NotFound(f"no dead letter {letter_id}")
    return letter_id


def show_letter(call: Call) -> flask.Response:
    letter_id = _letter_id(call)
    letter = call.client(open_letters).get(letter_id)
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


def delete_letter(call: Call) -> flask.Response:
    letter_id = _letter_id(call)
    if not call.client(open_letters).delete(letter_id):
        raise NotFound(f"no dead letter {letter_id}")
    return flask.Response(status=204)


def replay_letter(call: Call) -> flask.Response:
    letter_id = _letter_id(call)
    store = call.client(open_letters)
    letter = store.get(letter_id)
    if letter is None:
        raise NotFound(f"no dead letter {letter_id}")
    sink = call.settings.sink
    if not sink:
        raise HttpError("replay needs K_SINK (the broker ingress) to be set", 503)
    try:
        send_event(sink, letter.event)
    except SendError as exc:
        raise HttpError(f"replay failed: {exc}", 502) from None
    store.mark_replayed(letter_id)
    return json_response({"replayed": letter_id, "event_id": letter.event.id})


SPEC = FunctionSpec(
    name=NAME,
    description="Keeps undeliverable events; lists and replays them",
    consumes=("*",),
    on_event=on_event,
    routes=(
        route("GET", "/", ADMIN, list_letters),
        route("GET", "/<letter_id>", ADMIN, show_letter),
        route("DELETE", "/<letter_id>", ADMIN, delete_letter),
        route("POST", "/<letter_id>/replay", ADMIN, replay_letter),
    ),
    dedupe=False,  # the same event dead-lettered by two triggers is two dead letters
    database=True,
    uses_sink=True,  # replay
    dead_letter_sink=True,
)
handle = target(SPEC)
