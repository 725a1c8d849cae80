"""The local gateway: broker ingress, trigger API, and path or host routing to function processes.

Knative gives each Service its own host behind Kourier; here `/<function>/<rest>` and
`Host: <function>.localhost` both reach the function at `/<rest>`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import urllib3
from prometheus_client import CONTENT_TYPE_LATEST
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request, Response

from eventing import broker_ttl
from eventing.http_codec import parse_http
from eventing.trigger import Trigger
from eventing.validation import EventTooLarge, InvalidEvent
from functions.registry import BROKER_PATH, TRIGGERS_PATH
from localplatform.broker.base import Broker, BrokerUnavailable, TriggerError, TriggerRefused
from localplatform.ext_authz import ExtAuthz, strip_internal_headers
from localplatform.metrics_aggregate import merge
from localplatform.processes import FunctionStartError, ProcessManager
from localplatform.sink_policy import SinkPolicy
from localplatform.trigger_store import TriggerFileError, TriggerStore
from shared import metrics
from shared.auth.policy import host_function
from shared.errors import error_body

log = logging.getLogger("datafrost.gateway")
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
NOT_FORWARDED = HOP_BY_HOP | {"host", "content-length"}
PROXY_TIMEOUT = urllib3.Timeout(connect=5.0, read=300.0)
MAX_TRIGGER_BODY_BYTES = 64 * 1024  # a trigger is a few hundred bytes; its bounded fields fit many times
GATEWAY_OWN_PATHS = frozenset({"/healthz", "/metrics", "/functions", BROKER_PATH, BROKER_PATH + "/"})


def error(message: str, status: int) -> Response:
    return Response(error_body(message), status=status, mimetype="application/json")


def ok_json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def read_within(request: Request, limit: int) -> bool:
    """Read (and cache) the request body unless it is over `limit` bytes; never reads more than that,
    whether the length was declared or the body came chunked. False when it is over."""
    request.max_content_length = limit
    try:
        request.get_data()
    except RequestEntityTooLarge:
        return False
    return True


class Gateway:
    """A WSGI app; one instance per `datafrost dev`."""

    def __init__(
        self,
        broker: Broker,
        processes: ProcessManager,
        triggers: TriggerStore,
        max_event_bytes: int,
        managed_triggers: frozenset[str] = frozenset(),
        authz: ExtAuthz | None = None,
        credentials: Callable[[str], dict[str, str]] = lambda url: {},
    ) -> None:
        self.authz = authz  # None on the internal (cluster-local) listener: no check there
        self.public_origin = ""  # set by the runner once both listeners are bound
        self.internal_origin = ""
        self.broker = broker
        self.managed_triggers = managed_triggers
        self.processes = processes
        self.trigger_store = triggers
        self.max_event_bytes = max_event_bytes
        self.credentials = credentials  # the service token for the platform's own calls (metrics)
        self._http = urllib3.PoolManager(num_pools=64, maxsize=32, retries=False)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self.route(request)
        except Exception:
            log.exception("gateway error on %s %s", request.method, request.path)
            response = error("internal error", 500)
        return response(environ, start_response)

    def route(self, request: Request) -> Response:
        host_function = self._function_from_host(request.host)
        if request.path == "/healthz" and host_function is None:
            return ok_json({"status": "ok"})  # the gateway's own health never depends on authz
        limit = None if host_function is not None else self.body_limit(request.path)
        if limit is not None and not read_within(request, limit):  # before authz reads any of it
            return self.too_large(request, limit)
        if self.authz is not None:
            # the original path and Host: authz maps host routing itself, as behind Kourier
            denied = self.authz.deny(request, request.path)
            if denied is not None:
                return denied
        if host_function is not None:
            return self.proxy(request, host_function, request.path)
        path = request.path
        if path == "/healthz":
            return ok_json({"status": "ok"})
        if path == "/metrics" and request.method == "GET":
            return Response(self.all_metrics(), content_type=CONTENT_TYPE_LATEST)
        if path in (BROKER_PATH, BROKER_PATH + "/"):
            return self.ingress(request)
        if path == TRIGGERS_PATH or path.startswith(TRIGGERS_PATH + "/"):
            return self.trigger_api(request, path[len(TRIGGERS_PATH) :].strip("/"))
        if path == "/functions":
            return ok_json({"functions": [fn.state().__dict__ for fn in self.processes.functions.values()]})
        name, _, rest = path.lstrip("/").partition("/")
        if name in self.processes.functions:
            return self.proxy(request, name, "/" + rest)
        return error(
            f"no route for {path}: not a function ({', '.join(self.processes.functions)}) or API path", 404
        )

    def all_metrics(self) -> bytes:
        """The gateway's metrics and every running function's (an idle one is not started for this)."""
        texts = {"gateway": metrics.exposition()[0].decode()}
        for name, fn in self.processes.functions.items():
            port = fn.port
            if not fn.running or port is None:
                continue
            try:
                # a function's /metrics needs the service role: the gateway asks as the platform
                headers = self.credentials(self.internal_origin + "/")
                answer = self._http.request(
                    "GET", f"http://127.0.0.1:{port}/metrics", headers=headers, timeout=2.0
                )
            except urllib3.exceptions.HTTPError:
                continue  # stopped meanwhile: it has nothing to report
            if answer.status == 200:
                texts[name] = answer.data.decode()
        return merge(texts)

    def _function_from_host(self, host: str) -> str | None:
        return host_function(host, self.processes.functions)

    # -- broker ---------------------------------------------------------------------------------
    def ingress(self, request: Request) -> Response:
        if request.method != "POST":
            return Response(
                error_body("the broker ingress accepts CloudEvents by POST"),
                405,
                {"Allow": "POST"},
                mimetype="application/json",
            )
        try:
            events = parse_http(request.headers, request.get_data(), max_bytes=self.max_event_bytes)
        except EventTooLarge as exc:
            metrics.events_rejected.labels(self.broker.name, "too_large").inc()
            return error(str(exc), 413)
        except InvalidEvent as exc:
            metrics.events_rejected.labels(self.broker.name, "invalid").inc()
            return error(f"invalid CloudEvent: {exc}", 400)
        try:
            dropped = self.broker.publish(events)
        except BrokerUnavailable as exc:
            return error(str(exc), 503)
        if dropped and len(dropped) == len(events):  # as Knative's ingress answers (a batch: the rest went)
            return error(
                f"event {dropped[0].id[:200]} dropped: its {broker_ttl.TTL_EXTENSION} reached 0, it has "
                "passed through the broker as often as it may (an event loop?)",
                400,
            )
        return Response(status=202)

    def body_limit(self, path: str) -> int | None:
        """The most the gateway reads of a request to one of its own routes (None: a function's request,
        which the function bounds)."""
        if path in (BROKER_PATH, BROKER_PATH + "/"):
            return self.max_event_bytes
        if path == TRIGGERS_PATH or path.startswith(TRIGGERS_PATH + "/"):
            return MAX_TRIGGER_BODY_BYTES
        return None

    def too_large(self, request: Request, limit: int) -> Response:
        if request.path in (BROKER_PATH, BROKER_PATH + "/"):
            metrics.events_rejected.labels(self.broker.name, "too_large").inc()
        length = request.content_length
        size = f"of {length} bytes " if length is not None else ""
        return error(f"request body {size}is over the limit of {limit} bytes", 413)

    def trigger_api(self, request: Request, name: str) -> Response:
        if not name and request.method == "GET":
            return ok_json({"triggers": [t.to_json() for t in self.broker.triggers()]})
        if not name and request.method == "POST":
            return self.create_trigger(request)
        if name and request.method == "GET":
            found = next((t for t in self.broker.triggers() if t.name == name), None)
            return ok_json(found.to_json()) if found else error(f"no trigger {name}", 404)
        if name and request.method == "DELETE":
            return self.delete_trigger(name)
        return error(f"{request.method} is not supported on {request.path}", 405)

    def create_trigger(self, request: Request) -> Response:
        """Validate, store, then start; a trigger that fails to start is taken out of the store again."""
        try:
            trigger = Trigger.from_json(json.loads(request.get_data()))
        except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
            return error(f"invalid trigger: {exc}", 400)
        except RecursionError:  # nested deeper than the parser goes: no trigger is
            return error("invalid trigger: the JSON is nested too deeply", 400)
        if trigger.name in self.managed_triggers:
            return error(f"trigger {trigger.name} belongs to a function and is managed by the registry", 409)
        problem = self.trigger_problem(trigger)
        if problem is not None:
            return error(f"invalid trigger: {problem}", 400)
        trigger = self.cluster_local(trigger)
        try:
            before = self.trigger_store.entry(trigger.name)
            self.trigger_store.put(trigger)
        except TriggerFileError as exc:
            return error(f"cannot store trigger {trigger.name}: {exc}; fix or remove that file", 409)
        try:
            self.broker.set_trigger(trigger)
        except TriggerError as exc:
            if before is None:
                self.trigger_store.remove(trigger.name)
            else:
                self.trigger_store.put_entry(trigger.name, before)
            return error(str(exc), 409 if isinstance(exc, TriggerRefused) else 503)
        return ok_json(trigger.to_json(), 201)

    def delete_trigger(self, name: str) -> Response:
        """Forget a stored trigger and stop it; one that never started (or was invalid) goes all the same."""
        if name in self.managed_triggers:
            return error(f"trigger {name} belongs to a function and is managed by the registry", 409)
        try:
            stored = self.trigger_store.remove(name)
        except TriggerFileError as exc:
            return error(f"cannot delete trigger {name}: {exc}; fix or remove that file", 409)
        try:
            running = self.broker.remove_trigger(name)
        except TriggerError as exc:
            return error(str(exc), 503)
        if not stored and not running:
            return error(f"no trigger {name}", 404)
        return Response(status=204)

    def trigger_problem(self, trigger: Trigger) -> str | None:
        """Why this platform may not run `trigger` (its subscriber or dead-letter sink), or None."""
        policy = SinkPolicy(self.gateway_ports, self.function_of)
        for field, url in (
            ("subscriber", trigger.subscriber),
            ("dead_letter_sink", trigger.delivery.dead_letter_sink),
        ):
            problem = policy.problem(url) if url else None
            if problem is not None:
                where = field if field == "subscriber" else f"delivery.{field}"
                return f"{where} {problem}"
        return None

    @property
    def gateway_ports(self) -> frozenset[int]:
        """The ports of this gateway's two listeners (known once both are bound)."""
        return frozenset(
            p for p in (urlsplit(o).port for o in (self.public_origin, self.internal_origin)) if p
        )

    def function_of(self, host: str, path: str) -> str | None:
        """The function a request for `host` and `path` reaches through this gateway, as `route` decides;
        None for the gateway's own routes (broker ingress, trigger API, health, metrics) and no route."""
        by_host = self._function_from_host(host)
        if by_host is not None:
            return by_host
        if path in GATEWAY_OWN_PATHS or path == TRIGGERS_PATH or path.startswith(TRIGGERS_PATH + "/"):
            return None
        name = path.lstrip("/").partition("/")[0]
        return name if name in self.processes.functions else None

    def cluster_local(self, trigger: Trigger) -> Trigger:
        """Sinks on this platform's public gateway are reached on the internal listener instead, as
        Knative resolves a Service to its cluster-local address (no round trip through the auth check)."""
        if not self.public_origin or not self.internal_origin:
            return trigger

        def local(url: str | None) -> str | None:
            if url and (url == self.public_origin or url.startswith(self.public_origin + "/")):
                return self.internal_origin + url[len(self.public_origin) :]
            return url

        subscriber = local(trigger.subscriber) or trigger.subscriber
        return replace(trigger, subscriber=subscriber).with_delivery(
            dead_letter_sink=local(trigger.delivery.dead_letter_sink)
        )

    # -- functions ------------------------------------------------------------------------------
    def proxy(self, request: Request, name: str, path: str) -> Response:
        fn = self.processes.functions[name]
        headers = {k: v for k, v in strip_internal_headers(request).items() if k.lower() not in NOT_FORWARDED}
        headers["X-Forwarded-Host"] = request.host
        headers["X-Forwarded-For"] = request.remote_addr or ""
        target = path + ("?" + request.query_string.decode() if request.query_string else "")
        body = request.get_data()
        try:
            with fn.use() as base:
                upstream = self._http.request(
                    request.method,
                    base + target,
                    body=body,
                    headers=headers,
                    timeout=PROXY_TIMEOUT,
                    redirect=False,
                    preload_content=False,
                )
        except FunctionStartError as exc:
            return error(str(exc), 503)
        except urllib3.exceptions.HTTPError as exc:
            return error(f"function {name} did not answer: {exc}", 502)
        out_headers = [(k, v) for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP]
        return Response(
            _stream(upstream), status=upstream.status, headers=out_headers, direct_passthrough=True
        )


def _stream(upstream: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    try:
        yield from upstream.stream(64 * 1024)
    finally:
        upstream.release_conn()
