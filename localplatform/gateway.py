"""The local gateway: broker ingress, trigger API, and path or host routing to function processes.

Knative gives each Service its own host behind Kourier; here `/<function>/<rest>` and
`Host: <function>.localhost` both reach the function at `/<rest>`.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any

import urllib3
from prometheus_client import CONTENT_TYPE_LATEST
from werkzeug.wrappers import Request, Response

from eventing.http_codec import parse_http
from eventing.trigger import Trigger
from eventing.validation import EventTooLarge, InvalidEvent
from functions.registry import BROKER_PATH, TRIGGERS_PATH, gateway_policy
from functions.spec import Route
from localplatform.broker.base import Broker, BrokerUnavailable
from localplatform.ext_authz import ExtAuthz, strip_internal_headers
from localplatform.metrics_aggregate import merge
from localplatform.processes import FunctionStartError, ProcessManager
from localplatform.trigger_store import TriggerStore
from shared import metrics, safe_json
from shared.auth.policy import NoRoute, gateway_path, host_function
from shared.errors import error_body
from shared.loopback import names_loopback
from shared.paths import RefusedPath, encoded, request_path
from shared.settings import Settings

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


def error(message: str, status: int) -> Response:
    return Response(error_body(message), status=status, mimetype="application/json")


def ok_json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


class Gateway:
    """A WSGI app; one instance per `datafrost dev`."""

    def __init__(
        self,
        broker: Broker,
        processes: ProcessManager,
        triggers: TriggerStore,
        settings: Settings,
        managed_triggers: frozenset[str] = frozenset(),
        authz: ExtAuthz | None = None,
        credentials: Callable[[str], dict[str, str]] = lambda url: {},
        loopback_hosts_only: bool = False,
    ) -> None:
        self.authz = authz  # None on the internal (cluster-local) listener: no check there
        # the internal listener trusts its callers for being on this machine: it answers only requests
        # whose Host names loopback, so a DNS-rebinding page (its own domain as Host) gets nothing
        self.loopback_hosts_only = loopback_hosts_only
        self.public_origin = ""  # set by the runner once both listeners are bound
        self.internal_origin = ""
        self.broker = broker
        self.managed_triggers = managed_triggers
        self.processes = processes
        self.trigger_store = triggers
        self.settings = settings
        self.max_event_bytes = settings.max_event_bytes
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
        if self.loopback_hosts_only and not names_loopback(request.host):
            return error(
                "the cluster-local listener answers only requests addressed to loopback (Host 127.0.0.1, "
                "localhost or <function>.localhost)",
                403,
            )
        try:  # read once: what authz checks is what is routed and what the function serves
            path = request_path(request.environ)
        except RefusedPath as exc:
            return error(str(exc), 400)
        host_function = self._function_from_host(request.host)
        if path == "/healthz" and host_function is None:
            return ok_json({"status": "ok"})  # the gateway's own health never depends on authz
        if self.authz is not None:
            # the original path and Host: authz maps host routing itself, as behind Kourier
            denied = self.authz.deny(request, path)
            if denied is not None:
                return denied
        route = self.declared(request, gateway_path(request.host, path, self.processes.functions))
        if isinstance(route, Response):
            return route
        if host_function is not None:
            return self.proxy(request, host_function, path, route)
        if path == "/healthz":
            return ok_json({"status": "ok"})
        if path == "/metrics" and request.method == "GET":
            return Response(self.all_metrics(), content_type=CONTENT_TYPE_LATEST)
        if path in (BROKER_PATH, BROKER_PATH + "/"):
            return self.ingress(request)
        if path == TRIGGERS_PATH or path.startswith(TRIGGERS_PATH + "/"):
            return self.too_large(request, route) or self.trigger_api(
                request, path[len(TRIGGERS_PATH) :].strip("/")
            )
        if path == "/functions":
            return ok_json({"functions": [fn.state().__dict__ for fn in self.processes.functions.values()]})
        name, _, rest = path.lstrip("/").partition("/")
        if name in self.processes.functions:
            return self.proxy(request, name, "/" + rest, route)
        return error(
            f"no route for {path}: not a function ({', '.join(self.processes.functions)}) or API path", 404
        )

    def declared(self, request: Request, path: str) -> Route | Response:
        """The route a request reaches (its gateway path form), else the 404 or 405 answer (what authz
        answers too: with auth off nothing else would)."""
        try:
            return gateway_policy().lookup(request.method, path)
        except NoRoute as exc:
            response = error(str(exc), 405 if exc.allowed else 404)
            if exc.allowed:
                response.headers["Allow"] = ", ".join(exc.allowed)
            return response

    def too_large(self, request: Request, route: Route) -> Response | None:
        """413 for a body over the route's limit, from Content-Length, before any of it is read (waitress
        counts a chunked body against the largest limit of all)."""
        limit = route.max_body.resolve(self.settings)
        if request.content_length is not None and request.content_length > limit:
            return error(
                f"request body of {request.content_length} bytes is over this route's limit of {limit} bytes",
                413,
            )
        return None

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
        length = request.content_length
        if length is not None and length > self.max_event_bytes:
            metrics.events_rejected.labels(self.broker.name, "too_large").inc()
            return error(f"request body of {length} bytes is over the limit of {self.max_event_bytes}", 413)
        try:
            events = parse_http(request.headers, request.get_data(), max_bytes=self.max_event_bytes)
        except EventTooLarge as exc:
            metrics.events_rejected.labels(self.broker.name, "too_large").inc()
            return error(str(exc), 413)
        except InvalidEvent as exc:
            metrics.events_rejected.labels(self.broker.name, "invalid").inc()
            return error(f"invalid CloudEvent: {exc}", 400)
        try:
            self.broker.publish(events)
        except BrokerUnavailable as exc:
            return error(str(exc), 503)
        return Response(status=202)

    def trigger_api(self, request: Request, name: str) -> Response:
        if not name and request.method == "GET":
            return ok_json({"triggers": [t.to_json() for t in self.broker.triggers()]})
        if not name and request.method == "POST":
            try:  # JSON that is not a trigger, too deep, or not JSON at all
                trigger = Trigger.from_json(safe_json.loads(request.get_data()))
            except Exception as exc:
                return error(f"invalid trigger: {exc}", 400)
            if trigger.name in self.managed_triggers:
                return error(
                    f"trigger {trigger.name} belongs to a function and is managed by the registry", 409
                )
            trigger = self.cluster_local(trigger)
            self.trigger_store.put(trigger)
            self.broker.set_trigger(trigger)
            return ok_json(trigger.to_json(), 201)
        if name and request.method == "GET":
            found = next((t for t in self.broker.triggers() if t.name == name), None)
            return ok_json(found.to_json()) if found else error(f"no trigger {name}", 404)
        if name and request.method == "DELETE":
            if name in self.managed_triggers:
                return error(f"trigger {name} belongs to a function and is managed by the registry", 409)
            if not self.trigger_store.remove(name):
                return error(f"no trigger {name}", 404)
            self.broker.remove_trigger(name)
            return Response(status=204)
        return error(f"{request.method} is not supported on {request.path}", 405)

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
    def proxy(self, request: Request, name: str, path: str, route: Route) -> Response:
        too_large = self.too_large(request, route)
        if too_large is not None:
            return too_large
        fn = self.processes.functions[name]
        headers = {k: v for k, v in strip_internal_headers(request).items() if k.lower() not in NOT_FORWARDED}
        headers["X-Forwarded-Host"] = request.host
        headers["X-Forwarded-For"] = request.remote_addr or ""
        target = encoded(path) + ("?" + request.query_string.decode() if request.query_string else "")
        length = request.content_length or 0
        chunked = not length and "chunked" in request.headers.get("Transfer-Encoding", "").lower()
        body = CountedBody(request.stream, route.max_body.resolve(self.settings))
        if length:  # streamed as it arrives, never held whole
            headers["Content-Length"] = str(length)
        try:
            with fn.use() as base:
                upstream = self._http.request(
                    request.method,
                    base + target,
                    body=body if length or chunked else None,
                    headers=headers,
                    timeout=PROXY_TIMEOUT,
                    redirect=False,
                    preload_content=False,
                    chunked=chunked,
                )
        except FunctionStartError as exc:
            return error(str(exc), 503)
        except (urllib3.exceptions.HTTPError, BodyTooLarge) as exc:
            if body.over:
                return error(f"request body is over this route's limit of {body.limit} bytes", 413)
            return error(f"function {name} did not answer: {exc}", 502)
        out_headers = [(k, v) for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP]
        return Response(
            _stream(upstream), status=upstream.status, headers=out_headers, direct_passthrough=True
        )


class BodyTooLarge(Exception):
    """A body without a length (chunked) ran past its route's limit while it streamed."""


class CountedBody(io.RawIOBase):
    """A request body read on in blocks by urllib3 (as it is or chunked), counted against the
    route's limit as it goes."""

    BLOCK = 64 * 1024

    def __init__(self, stream: Any, limit: int) -> None:
        super().__init__()
        self.stream, self.limit, self.seen, self.over = stream, limit, 0, False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        block = self.stream.read(size if size >= 0 else self.BLOCK)
        self.seen += len(block)
        if self.seen > self.limit:
            self.over = True
            raise BodyTooLarge(f"over the limit of {self.limit} bytes")
        return bytes(block)


def _stream(upstream: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    try:
        yield from upstream.stream(64 * 1024)
    finally:
        upstream.release_conn()
