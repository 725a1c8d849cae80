"""The local gateway: broker ingress, trigger API, and path or host routing to function processes.

Knative gives each Service its own host behind Kourier; here `/<function>/<rest>` and
`Host: <function>.localhost` both reach the function at `/<rest>`.
"""

from __future__ import annotations

import hmac
import io
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
from functions.registry import BROKER_PATH, TRIGGERS_PATH, gateway_policy
from functions.spec import Route
from localplatform.broker.base import Broker, BrokerUnavailable, TriggerError, TriggerRefused
from localplatform.ext_authz import ExtAuthz, strip_internal_headers
from localplatform.metrics_aggregate import LastExports, merge
from localplatform.processes import FunctionProcess, FunctionStartError, ProcessManager
from localplatform.sink_policy import SinkPolicy
from localplatform.sink_refs import function_ref, shown
from localplatform.trigger_store import TriggerFileError, TriggerStore
from shared import metrics, safe_json
from shared.auth.policy import NoRoute, gateway_path, host_function
from shared.errors import error_body
from shared.loopback import is_loopback_address, names_loopback
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
DEV_SECRET_HEADER = "X-Dev-Token-Secret"
STATUS_PATHS = ("/functions", "/metrics")  # with the trigger list: what `datafrost status` reads
PROXY_TIMEOUT = urllib3.Timeout(connect=5.0, read=300.0)


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
        settings: Settings,
        managed_triggers: frozenset[str] = frozenset(),
        authz: ExtAuthz | None = None,
        credentials: Callable[[str], dict[str, str]] = lambda url: {},
        loopback_hosts_only: bool = False,
        local_status_secret: str | None = None,
        last_exports: LastExports | None = None,
    ) -> None:
        self.authz = authz  # None on the internal (cluster-local) listener: no check there
        # the dev token secret: with it a caller on this machine reads the platform's state without
        # the authz round trip (which would start authz, and so change what it reads)
        self.local_status_secret = local_status_secret
        self.last_exports = last_exports or LastExports(metrics.KEPT_WHILE_STOPPED)
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
        local = self.local_status_read(request, path) if host_function is None else False
        if isinstance(local, Response):
            return local
        if self.authz is not None and not local:
            # the original path and Host: authz maps host routing itself, as behind Kourier
            denied = self.authz.deny(request, path)
            if denied is not None:
                return denied
        route = self.declared(request, gateway_path(request.host, path, self.processes.functions))
        if isinstance(route, Response):
            return route
        limit = route.max_body.resolve(self.settings)  # from Content-Length now, counted as it streams
        if request.content_length is not None and request.content_length > limit:
            return self.too_large(request, limit)
        if host_function is not None:
            return self.proxy(request, host_function, path, limit)
        if path == "/healthz":
            return ok_json({"status": "ok"})
        if path == "/metrics" and request.method == "GET":
            return Response(self.all_metrics(), content_type=CONTENT_TYPE_LATEST)
        own = path in (BROKER_PATH, BROKER_PATH + "/") or path.startswith(TRIGGERS_PATH)
        if own and not read_within(request, limit):  # a chunked body: read up to the limit, no further
            return self.too_large(request, limit)
        if path in (BROKER_PATH, BROKER_PATH + "/"):
            return self.ingress(request)
        if path == TRIGGERS_PATH or path.startswith(TRIGGERS_PATH + "/"):
            return self.trigger_api(request, path[len(TRIGGERS_PATH) :].strip("/"))
        if path == "/functions":
            return ok_json({"functions": [fn.state().__dict__ for fn in self.processes.functions.values()]})
        name, _, rest = path.lstrip("/").partition("/")
        if name in self.processes.functions:
            return self.proxy(request, name, "/" + rest, limit)
        return error(
            f"no route for {path}: not a function ({', '.join(self.processes.functions)}) or API path", 404
        )

    def local_status_read(self, request: Request, path: str) -> bool | Response:
        """True for a read of the platform's own state (GET /functions, /metrics, the trigger list) that
        carries the data dir's dev token secret (X-Dev-Token-Secret) from this machine: it needs no
        authz round trip. A 403 when the secret is sent from elsewhere, to another host, or is wrong;
        False without it (the usual check applies)."""
        given = request.headers.get(DEV_SECRET_HEADER)
        if given is None or self.authz is None or self.local_status_secret is None:
            return False
        reads = request.method in ("GET", "HEAD") and (
            path in STATUS_PATHS or path == TRIGGERS_PATH or path.startswith(TRIGGERS_PATH + "/")
        )
        if not reads:
            return False
        if not is_loopback_address(request.remote_addr or "") or not names_loopback(request.host):
            return error("the dev token secret is taken only from this machine, addressed to loopback", 403)
        if not hmac.compare_digest(given.strip().encode(), self.local_status_secret.encode()):
            return error(f"wrong {DEV_SECRET_HEADER}: it must be the data dir's auth/dev-token-secret", 403)
        return True

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

    def all_metrics(self) -> bytes:
        """The gateway's metrics and every running function's (an idle one is not started for this: it
        shows the gauges of stored state it exported last, `LastExports`)."""
        texts = {"gateway": metrics.exposition()[0].decode()}
        for name, fn in self.processes.functions.items():
            text = self.scrape(fn) if fn.running else None
            text = text if text is not None else self.last_exports.last(name)
            if text is not None:
                texts[name] = text
        return merge(texts)

    def scrape(self, fn: FunctionProcess) -> str | None:
        """A running function's /metrics (remembered in `last_exports`), without counting as a use."""
        port = fn.port
        if not fn.running or port is None:
            return None
        try:
            # a function's /metrics needs the service role: the gateway asks as the platform
            headers = self.credentials(self.internal_origin + "/")
            answer = self._http.request(
                "GET", f"http://127.0.0.1:{port}/metrics", headers=headers, timeout=2.0
            )
        except urllib3.exceptions.HTTPError:
            return None  # stopped meanwhile: it has nothing to report
        if answer.status != 200:
            return None
        text = answer.data.decode()
        self.last_exports.record(fn.spec.name, text)
        return text

    def _function_from_host(self, host: str) -> str | None:
        return host_function(host, self.processes.functions)

    # -- broker ---------------------------------------------------------------------------------
    def ingress(self, request: Request) -> Response:
        """POST only: the route table answers 405 to any other method before this runs."""
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

    def too_large(self, request: Request, limit: int) -> Response:
        if request.path in (BROKER_PATH, BROKER_PATH + "/"):
            metrics.events_rejected.labels(self.broker.name, "too_large").inc()
        length = request.content_length
        size = f"of {length} bytes " if length is not None else ""
        return error(f"request body {size}is over the limit of {limit} bytes", 413)

    def trigger_api(self, request: Request, name: str) -> Response:
        if not name and request.method == "GET":
            return ok_json({"triggers": [self.listed(t) for t in self.broker.triggers()]})
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
        try:  # JSON that is not a trigger, nested too deep (shared.safe_json), or not JSON at all
            trigger = Trigger.from_json(safe_json.loads(request.get_data()))
        except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
            return error(f"invalid trigger: {exc}", 400)
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
        policy = SinkPolicy(self.gateway_ports, self.function_of, self.public_origin)
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
        name = gateway_path(host, path, self.processes.functions).lstrip("/").partition("/")[0]
        return name if name in self.processes.functions else None  # no function has a gateway path's name

    def listed(self, trigger: Trigger) -> dict[str, Any]:
        """A trigger's JSON, plus `refs`: each sink that is one of this platform's functions, as `kn`
        shows it (`ksvc:<name>[path]`), whatever port the platform has now."""
        body = trigger.to_json()
        refs = {}
        for key, url in (
            ("subscriber", trigger.subscriber),
            ("dead_letter_sink", trigger.delivery.dead_letter_sink),
        ):
            found = function_ref(url, self.processes.functions) if url else None
            if url and found and url.startswith(self.internal_origin + "/"):
                refs[key] = shown(*found)
        if refs:
            body["refs"] = refs
        return body

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
    def proxy(self, request: Request, name: str, path: str, limit: int) -> Response:
        """The request streamed to the function (its body counted against `limit`), its answer back."""
        fn = self.processes.functions[name]
        headers = {k: v for k, v in strip_internal_headers(request).items() if k.lower() not in NOT_FORWARDED}
        headers["X-Forwarded-Host"] = request.host
        headers["X-Forwarded-For"] = request.remote_addr or ""
        target = encoded(path) + ("?" + request.query_string.decode() if request.query_string else "")
        length = request.content_length or 0
        chunked = not length and "chunked" in request.headers.get("Transfer-Encoding", "").lower()
        body = CountedBody(request.stream, limit)
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
