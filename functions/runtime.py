"""The runtime every function is served through, on functions-framework's `http` signature.

`target(SPEC)` is a function module's functions-framework target (`handle`). From the spec alone it
routes each request (werkzeug's router over `spec.all_routes`: 404 and 405 with JSON reasons), checks
the route's role itself (whatever the gateway decided), and answers health, metrics and CloudEvents
(strict parsing with no echo of headers or body, empty-2xx or CloudEvent replies, a (source, id)
dedupe window) before any handler runs. Settings are read once per process, on the first request,
and handed to the handlers in a `Context`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import flask
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule

from eventing.cloudevent import CloudEvent
from eventing.http_codec import parse_http, to_binary
from eventing.validation import EventTooLarge, InvalidEvent
from functions.context import Call, Context
from functions.spec import BUILTIN_ROUTES, EVENT_ROUTE, PUBLIC, FunctionSpec, Route
from pipeline.events import BUCKET_EXTENSION, KNOWN_TYPES, image_id_of
from shared import logging as jsonlog
from shared import metrics, otel, tracing
from shared.auth.access import Denied, authorize
from shared.auth.identity import SERVICE, Identity
from shared.auth.verify import verifier_from_settings
from shared.errors import HttpError, error_body
from shared.logging import log_fields
from shared.paths import RefusedPath, request_path
from shared.settings import Settings, from_env

log = logging.getLogger("datafrost.function")
DEDUPE_WINDOW = 2_000
HEALTHZ, READYZ, METRICS = BUILTIN_ROUTES


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


def _event_response(reply: CloudEvent | None) -> flask.Response:
    if reply is None:
        return flask.Response(status=204)
    headers, body = to_binary(reply)
    return flask.Response(body, status=200, headers=headers)


def limit_body(request: flask.Request, limit: int) -> None:
    """Refuse a body over the route's limit before reading any of it (413); a body without a length
    (chunked) is cut off as it streams past the limit."""
    if request.content_length is not None and request.content_length > limit:
        raise HttpError(
            f"request body of {request.content_length} bytes is over this route's limit of {limit} bytes", 413
        )
    request.max_content_length = limit


def router(routes: tuple[Route, ...]) -> Map:
    """werkzeug's router over the routes (endpoint: the route's index); `/x/` and `/x` are one path."""
    rules = [Rule(r.path, methods=list(r.methods), endpoint=i) for i, r in enumerate(routes)]
    return Map(rules, strict_slashes=False, merge_slashes=False, redirect_defaults=False)


class FunctionApp:
    """One function process's runtime: its spec, settings, routes and dedupe window."""

    def __init__(self, spec: FunctionSpec, settings: Settings | None = None) -> None:
        self.spec = spec
        self.routes = spec.all_routes
        self._urls = router(self.routes).bind("")  # matching only: one adapter serves every request
        self._given_settings = settings
        self._context: Context | None = None
        self._lock = threading.Lock()
        self._seen = _SeenEvents(DEDUPE_WINDOW if spec.dedupe else 0)

    @property
    def context(self) -> Context:
        """Built on the process's first request: settings, logging, its cold start, the start hook."""
        if self._context is None:
            with self._lock:
                if self._context is None:
                    settings = self._given_settings or from_env(dict(os.environ))
                    if not self.spec.uses_sink:  # K_SINK is for functions that declare it, as on Knative
                        settings = replace(settings, sink=None)
                    context = Context(settings)
                    jsonlog.configure(self.spec.name, settings.log_level)
                    otel.configure(settings)
                    metrics.cold_starts.labels(self.spec.name).inc()
                    if self.spec.on_start is not None:
                        self.spec.on_start(context)
                    self._context = context
        return self._context

    def __call__(self, request: flask.Request) -> flask.Response:
        context = self.context
        try:
            response = self._answer(request, context)
        except HttpError as exc:
            response = error_response(exc.message, exc.status)
        except HTTPException as exc:  # werkzeug refusing the request as it reads it (a form over its limits)
            response = error_response(f"{exc.name.lower()}: {exc.description}", exc.code or 400)
        except Exception:
            log.exception("unhandled error")
            response = error_response("internal error", 500)
        metrics.function_requests.labels(self.spec.name, request.method, str(response.status_code)).inc()
        return response

    def _answer(self, request: flask.Request, context: Context) -> flask.Response:
        try:  # the path as sent, read once: a path two hops could read differently is refused
            path = request_path(request.environ)
        except RefusedPath as exc:
            raise HttpError(str(exc), 400) from None
        try:
            index, params = self._urls.match(path, method=request.method)
        except NotFound:
            raise HttpError(f"no route for {request.method} {request.path}", 404) from None
        except MethodNotAllowed as exc:
            allowed = ", ".join(sorted(exc.valid_methods or ()))
            response = error_response(f"{request.method} is not allowed on {request.path} ({allowed})", 405)
            response.headers["Allow"] = allowed
            return response
        route = self.routes[index]
        try:
            identity = self.caller(request, route, context.settings)
        except Denied as denied:
            response = error_response(denied.reason, denied.status)
            if denied.challenge:
                response.headers["WWW-Authenticate"] = denied.challenge
            return response
        limit_body(request, route.max_body.resolve(context.settings))
        if route is HEALTHZ or route is READYZ:
            return json_response({"status": "ok", "function": self.spec.name})
        if route is METRICS:
            body, content_type = metrics.exposition()
            return flask.Response(body, content_type=content_type)
        if route is EVENT_ROUTE:
            return self.handle_event(request, context)
        assert route.handler is not None  # FunctionSpec refuses a route of its own without one
        call = Call(request, params, identity, context)
        with tracing.continued(
            request.headers.get(tracing.TRACEPARENT), f"{self.spec.name} {request.method}"
        ):
            return flask.current_app.make_response(route.handler(call))

    def caller(self, request: flask.Request, route: Route, settings: Settings) -> Identity | None:
        """The verified caller holding the route's role; None for a public route or with auth off."""
        if route.role == PUBLIC or not settings.auth_enabled:
            return None
        if route.role == SERVICE and settings.auth_service_routes == "network":
            return None  # the deployment trusts the network for internal callers (see Settings)
        return authorize(request.headers, route.role, self.context.client(verifier_from_settings))

    def handle_event(self, request: flask.Request, context: Context) -> flask.Response:
        assert self.spec.on_event is not None
        try:
            (event,) = parse_http(
                request.headers,
                request.get_data(),
                max_bytes=context.settings.max_event_bytes,
                allow_batch=False,
            )
        except EventTooLarge as exc:
            return error_response(str(exc), 413)
        except InvalidEvent as exc:
            return error_response(f"invalid CloudEvent: {exc}", 400)
        key = (event.source, event.id)
        fields = jsonlog.event_context(
            event.id, event.type, event_source=event.source, image_id=_image_id(event)
        )
        with tracing.continued(event.get(tracing.TRACEPARENT), f"{self.spec.name} {event.type}"), fields:
            already, previous_reply = self._seen.get(key)
            if already:
                log.info("duplicate event: answered as the first time")
                return _event_response(previous_reply)
            reply = self._handled(event, context)
            self._seen.add(key, reply)
            return _event_response(reply)

    def _handled(self, event: CloudEvent, context: Context) -> CloudEvent | None:
        """The handler's reply, with the event's metrics and its one `event handled` log line."""
        assert self.spec.on_event is not None
        started = time.perf_counter()
        outcome = "error"
        try:
            reply = self.spec.on_event(event, context)
            outcome = "ok"
            return reply
        except HttpError as exc:
            outcome = "rejected"
            log.warning("event refused: %s", exc.message)
            raise
        finally:
            elapsed = time.perf_counter() - started
            type_label = metrics.event_type_label(event.type, KNOWN_TYPES)
            metrics.function_events.labels(self.spec.name, type_label, outcome).inc()
            metrics.function_event_duration.labels(self.spec.name, type_label).observe(elapsed)
            log.info("event handled", extra=log_fields(outcome=outcome, duration_ms=round(elapsed * 1000, 1)))


def target(spec: FunctionSpec, settings: Settings | None = None) -> Callable[[flask.Request], flask.Response]:
    """The functions-framework target of a function (`handle = target(SPEC)` in its main.py).

    `settings` replaces the environment (tests); otherwise they are read once, on the first request.
    """
    app = FunctionApp(spec, settings)

    def handle(request: flask.Request) -> flask.Response:  # functions-framework wants a plain function
        return app(request)

    return handle
