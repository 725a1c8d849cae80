"""The shared wrapper every function is served through, on functions-framework's `http` signature.

It gives strict CloudEvent parsing (no echo of headers or body on errors), health and metrics routes,
empty-2xx or CloudEvent replies, JSON errors, JSON logs and a small (source, id) dedupe window.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import flask

from eventing.cloudevent import CloudEvent
from eventing.http_codec import parse_http, to_binary
from eventing.validation import EventTooLarge, InvalidEvent
from functions.spec import FunctionSpec
from pipeline.events import BUCKET_EXTENSION, KNOWN_TYPES, image_id_of
from shared import logging as jsonlog
from shared import metrics, tracing
from shared.errors import HttpError, error_body
from shared.logging import log_fields
from shared.settings import settings

log = logging.getLogger("datafrost.function")
EventHandler = Callable[[CloudEvent], CloudEvent | None]
HttpHandler = Callable[[flask.Request], Any]
DEDUPE_WINDOW = 2_000


class _SeenEvents:
    """The most recent (source, id) pairs handled successfully by this process, with their replies.

    A redelivery is answered with the same reply as the first delivery: if that answer was lost on the
    way back, the reply still reaches the broker (replies have deterministic ids, so it is harmless if
    it got there twice).
    """

    def __init__(self, size: int = DEDUPE_WINDOW) -> None:
        self._size = size
        self._replies: OrderedDict[tuple[str, str], CloudEvent | None] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> tuple[bool, CloudEvent | None]:
        """(seen, its reply)."""
        with self._lock:
            if key not in self._replies:
                return False, None
            return True, self._replies[key]

    def add(self, key: tuple[str, str], reply: CloudEvent | None) -> None:
        if not self._size:
            return
        with self._lock:
            self._replies[key] = reply
            if len(self._replies) > self._size:
                self._replies.popitem(last=False)


def json_response(body: Any, status: int = 200) -> flask.Response:
    return flask.Response(flask.json.dumps(body), status=status, mimetype="application/json")


def error_response(message: str, status: int) -> flask.Response:
    return flask.Response(error_body(message), status=status, mimetype="application/json")


def _image_id(event: CloudEvent) -> str | None:
    try:
        data = event.json() if event.data is not None and event.data[:1] == b"{" else None
    except ValueError:
        data = None
    return image_id_of(event.get(BUCKET_EXTENSION), event.subject, data)


def _traced_request(spec: FunctionSpec, request: flask.Request, handle: HttpHandler) -> Any:
    """An HTTP request (not an event) continues the caller's trace (W3C header) or starts one."""
    with tracing.continued(request.headers.get(tracing.TRACEPARENT), f"{spec.name} {request.method}"):
        return handle(request)


def _event_response(reply: CloudEvent | None) -> flask.Response:
    if reply is None:
        return flask.Response(status=204)
    headers, body = to_binary(reply)
    return flask.Response(body, status=200, headers=headers)


class _Runtime:
    def __init__(self, spec: FunctionSpec, on_start: Callable[[], None] | None = None) -> None:
        self.spec = spec
        self._on_start = on_start
        self._configured = False
        self._lock = threading.Lock()

    def configure_once(self) -> None:
        """On the process's first request: logging, its cold start, the function's own start hook."""
        if self._configured:
            return
        with self._lock:
            if self._configured:
                return
            jsonlog.configure(self.spec.name, settings().log_level)
            metrics.cold_starts.labels(self.spec.name).inc()
            if self._on_start is not None:
                self._on_start()
            self._configured = True

    def builtin(self, request: flask.Request) -> flask.Response | None:
        if request.method != "GET":
            return None
        if request.path in ("/healthz", "/readyz"):
            return json_response({"status": "ok", "function": self.spec.name})
        if request.path == "/metrics":
            body, content_type = metrics.exposition()
            return flask.Response(body, content_type=content_type)
        return None

    def serve(
        self, request: flask.Request, handle: Callable[[flask.Request], flask.Response]
    ) -> flask.Response:
        self.configure_once()
        response = self.builtin(request)
        if response is None:
            try:
                response = handle(request)
            except HttpError as exc:
                response = error_response(exc.message, exc.status)
            except Exception:
                log.exception("unhandled error")
                response = error_response("internal error", 500)
        metrics.function_requests.labels(self.spec.name, request.method, str(response.status_code)).inc()
        return response


def cloudevent_function(
    spec: FunctionSpec,
    on_event: EventHandler,
    api: HttpHandler | None = None,
    *,
    dedupe: bool = True,
    on_start: Callable[[], None] | None = None,
) -> Callable[[flask.Request], flask.Response]:
    """The functions-framework target for a function that consumes CloudEvents on `POST /`.

    Any other request goes to `api` when given (a function's own HTTP API), else answers 405.
    With `dedupe`, an event whose (source, id) this process already handled is not handled again; it
    gets the first answer again. `on_start` runs once, on the process's first request (register
    scrape-time metrics there: never at import, which the gateway and CLI do for every function).
    """
    runtime = _Runtime(spec, on_start)
    seen = _SeenEvents(DEDUPE_WINDOW if dedupe else 0)

    def handle_event(request: flask.Request) -> flask.Response:
        try:
            (event,) = parse_http(
                request.headers, request.get_data(), max_bytes=settings().max_event_bytes, allow_batch=False
            )
        except EventTooLarge as exc:
            return error_response(str(exc), 413)
        except InvalidEvent as exc:
            return error_response(f"invalid CloudEvent: {exc}", 400)
        key = (event.source, event.id)
        context = jsonlog.event_context(
            event.id, event.type, event_source=event.source, image_id=_image_id(event)
        )
        with tracing.continued(event.get(tracing.TRACEPARENT), f"{spec.name} {event.type}"), context:
            already, previous_reply = seen.get(key)
            if already:
                log.info("duplicate event: answered as the first time")
                return _event_response(previous_reply)
            started = time.perf_counter()
            outcome = "error"
            try:
                reply = on_event(event)
                outcome = "ok"
            except HttpError as exc:
                outcome = "rejected"
                log.warning("event refused: %s", exc.message)
                raise
            finally:
                elapsed = time.perf_counter() - started
                type_label = metrics.event_type_label(event.type, KNOWN_TYPES)
                metrics.function_events.labels(spec.name, type_label, outcome).inc()
                metrics.function_event_duration.labels(spec.name, type_label).observe(elapsed)
                fields = log_fields(outcome=outcome, duration_ms=round(elapsed * 1000, 1))
                log.info("event handled", extra=fields)
            seen.add(key, reply)
            return _event_response(reply)

    def dispatch(request: flask.Request) -> flask.Response:
        if request.method == "POST" and request.path == "/":
            return handle_event(request)
        if api is not None:
            return flask.current_app.make_response(_traced_request(spec, request, api))
        return error_response(f"{spec.name} accepts CloudEvents by POST /", 405)

    def target(request: flask.Request) -> flask.Response:
        return runtime.serve(request, dispatch)

    return target


def http_function(spec: FunctionSpec, on_request: HttpHandler) -> Callable[[flask.Request], flask.Response]:
    """The functions-framework target for an HTTP function; `on_request` may return any Flask answer."""
    runtime = _Runtime(spec)

    def handle_request(request: flask.Request) -> flask.Response:
        return flask.current_app.make_response(_traced_request(spec, request, on_request))

    def target(request: flask.Request) -> flask.Response:
        return runtime.serve(request, handle_request)

    return target
