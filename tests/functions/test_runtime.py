"""The shared function runtime: strict parsing, clean errors, health and metrics, dedupe with replies."""

from __future__ import annotations

from collections.abc import Callable

import flask
import pytest

from eventing.cloudevent import CloudEvent, new_event
from eventing.http_codec import parse_http, to_binary
from functions.context import Context
from functions.runtime import target
from functions.spec import EventHandler, FunctionSpec
from shared.errors import PermanentEventError
from shared.settings import from_env

OPEN = from_env({"DATAFROST_AUTH": "off"})  # these tests are about events, not tokens (tests/e2e)


def function(on_event: EventHandler) -> Callable[[flask.Request], flask.Response]:
    """The runtime's target for a function with this handler, with auth off."""
    return target(FunctionSpec(name="runtime-test", description="test", on_event=on_event), OPEN)


def serve(target: Callable[[flask.Request], flask.Response]) -> flask.testing.FlaskClient:
    app = flask.Flask("runtime-test")
    methods = ["GET", "POST", "PUT", "DELETE"]
    app.add_url_rule("/", "root", lambda: target(flask.request), methods=methods)
    app.add_url_rule("/<path:path>", "any", lambda path: target(flask.request), methods=methods)
    return app.test_client()


def test_a_redelivered_event_is_handled_once_and_answered_with_the_same_reply() -> None:
    calls: list[str] = []

    def on_event(event: CloudEvent, context: Context) -> CloudEvent:
        calls.append(event.id)
        return new_event("io.test.reply", "/runtime-test", {"n": len(calls)}, id=f"{event.id}.reply")

    client = serve(function(on_event))
    headers, body = to_binary(new_event("io.test.in", "tests", {"x": 1}, id="e-1"))
    first = client.post("/", headers=headers, data=body)
    second = client.post("/", headers=headers, data=body)
    assert calls == ["e-1"]
    assert first.status_code == second.status_code == 200
    replies = [parse_http(r.headers, r.data, max_bytes=10_000)[0] for r in (first, second)]
    assert replies[0] == replies[1] and replies[0].id == "e-1.reply"


def test_invalid_event_is_a_400_that_echoes_nothing() -> None:
    client = serve(function(lambda event, context: None))
    response = client.post(
        "/",
        headers={
            "ce-specversion": "1.0",
            "ce-id": "1",
            "ce-source": "s",
            "Authorization": "Bearer SECRET-TOKEN",
        },
        data=b"body-that-must-not-come-back",
    )
    assert response.status_code == 400
    assert response.get_json() == {"error": "invalid CloudEvent: required attribute 'type' is missing"}
    assert b"SECRET-TOKEN" not in response.data and b"body-that" not in response.data


@pytest.mark.parametrize(
    ("error", "status", "message"),
    [
        (PermanentEventError("the data can never be processed"), 422, "the data can never be processed"),
        (RuntimeError("database exploded at /secret/path"), 500, "internal error"),
    ],
    ids=["permanent", "unexpected"],
)
def test_handler_errors_become_json_with_the_right_status(
    error: Exception, status: int, message: str
) -> None:
    def on_event(event: CloudEvent, context: Context) -> None:
        raise error

    client = serve(function(on_event))
    headers, body = to_binary(new_event("io.test.in", "tests"))
    response = client.post("/", headers=headers, data=body)
    assert response.status_code == status
    assert response.get_json() == {"error": message}


def test_health_metrics_and_method_answers() -> None:
    client = serve(function(lambda event, context: None))
    assert client.get("/healthz").get_json() == {"status": "ok", "function": "runtime-test"}
    assert client.get("/readyz").status_code == 200
    assert b"datafrost_function_requests_total" in client.get("/metrics").data
    assert client.get("/").status_code == 405
    too_big = client.post("/", headers={"ce-specversion": "1.0"}, data=b"x" * (2 * 1024 * 1024))
    assert too_big.status_code == 413
