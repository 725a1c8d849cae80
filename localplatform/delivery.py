"""Delivery of one event to one trigger, following the Knative RabbitMQ broker's rules.

Binary-mode POST; 2xx is success; 5xx, 404, 408, 409, 429, timeouts and connection errors are retried
with backoff; other 4xx and 3xx are not. When retries run out (or at once for a failure that is not
retried) the original event goes to the dead-letter sink with `knativeerrordest`, `knativeerrorcode`
and `knativeerrordata`. A 2xx whose body is a CloudEvent is a reply, handed back to the broker.
"""

from __future__ import annotations

import base64
import enum
import http.client
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3
from urllib3.util.wait import wait_for_read

from eventing import broker_ttl
from eventing.cloudevent import CloudEvent
from eventing.http_codec import parse_http, to_binary
from eventing.trigger import DeliverySpec, Trigger
from eventing.validation import EventTooLarge, InvalidEvent
from shared import metrics, tracing
from shared.logging import log_fields

log = logging.getLogger("datafrost.delivery")

RETRIED_4XX = frozenset({404, 408, 409, 429})
ERROR_DATA_MAX_CHARS = 1024
REPLY_MAX_BYTES = 4 * 1024 * 1024  # unless the broker sets its own event size limit (`max_reply_bytes`)


def _fields(event: CloudEvent, **extra: object) -> dict[str, object]:
    """Log fields naming the event and its trace (the broker logs outside any function's context)."""
    fields: dict[str, object] = {"event_id": event.id, "event_type": event.type, **extra}
    trace = tracing.trace_id(event.get(tracing.TRACEPARENT))
    if trace is not None:
        fields["trace_id"] = trace
    return log_fields(**fields)


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    DEAD_LETTERED = "dead_lettered"  # handed to the dead-letter sink
    UNDELIVERABLE = "undeliverable"  # no sink, or the sink failed too: the broker keeps or logs it
    ABORTED = "aborted"  # shutting down mid-delivery: leave it to be redelivered


@dataclass(frozen=True)
class Attempt:
    """What one POST came back with; `code` 0 never reaches a dead letter (Knative reports 500)."""

    code: int
    body: bytes
    headers: dict[str, str]

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300

    @property
    def retryable(self) -> bool:
        """5xx, 404, 408, 409, 429 (and timeouts and connection errors, reported as 500) are retried."""
        return self.code >= 500 or self.code in RETRIED_4XX


@dataclass(frozen=True)
class DeliveryResult:
    outcome: Outcome
    attempts: int
    last: Attempt | None


def _merged(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Response headers as a dict; a header given more than once is joined with ", " (RFC 9110 5.3)."""
    headers: dict[str, str] = {}
    for name, value in items:
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def dead_letter_extensions(destination: str, attempt: Attempt) -> dict[str, str]:
    """The extensions Knative adds to a dead-lettered event."""
    extensions = {"knativeerrordest": destination, "knativeerrorcode": str(attempt.code)}
    if attempt.body:
        extensions["knativeerrordata"] = base64.b64encode(attempt.body).decode()[:ERROR_DATA_MAX_CHARS]
    return extensions


class _Connections(threading.local):
    """Each delivery thread's own keep-alive connections, by (host, port)."""

    def __init__(self) -> None:
        self.by_address: dict[tuple[str, int], http.client.HTTPConnection] = {}


# a kept connection that the subscriber closed while it was idle fails like this when used
_STALE = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, http.client.BadStatusLine)


class Dispatcher:
    """Sends events to subscribers over kept-alive HTTP connections; safe to share between threads.

    Plain `http://` subscribers (every function, and the usual sinks) are reached over each delivery
    thread's own `http.client` connection, one per subscriber address: nothing shared, no pool to
    take from and give back to. Other URLs (`https://`) go through a urllib3 pool manager.
    """

    def __init__(self, publish_reply: Callable[[CloudEvent], None], stopping: threading.Event) -> None:
        # headers a subscriber URL gets besides the event's (the platform's service token for its own
        # functions: `localplatform.auth_wiring.ServiceCredentials`); none by default
        self.credentials: Callable[[str], dict[str, str]] = lambda url: {}
        # a reply enters the broker as an event does through the ingress: no larger than its limit; a
        # response is read no further than that, whatever the subscriber sends
        self.max_reply_bytes = REPLY_MAX_BYTES
        self._publish_reply = publish_reply
        self._stopping = stopping
        self._http = urllib3.PoolManager(num_pools=64, maxsize=16, retries=False)
        self._targets: dict[str, tuple[str, int, str] | None] = {}  # URL -> (host, port, path) if http
        self._local = _Connections()
        self._opened: weakref.WeakSet[http.client.HTTPConnection] = weakref.WeakSet()
        self._opened_lock = threading.Lock()

    def close(self) -> None:
        with self._opened_lock:
            opened = list(self._opened)
        for connection in opened:
            connection.close()
        self._http.clear()

    def _plain_http(self, url: str) -> tuple[str, int, str] | None:
        """(host, port, path and query) of an http:// URL, parsed once per URL; None for any other."""
        try:
            return self._targets[url]
        except KeyError:
            pass
        target = None
        try:
            parts = urlsplit(url)
            if parts.scheme == "http" and parts.hostname:
                path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
                target = (parts.hostname, parts.port or 80, path)
        except ValueError:  # a malformed URL: urllib3 reports it as the delivery error
            target = None
        if len(self._targets) > 4096:
            self._targets.clear()
        self._targets[url] = target
        return target

    def post(self, url: str, event: CloudEvent, timeout: float) -> Attempt:
        """One binary-mode POST; connection errors and timeouts become a 500, as Knative reports them."""
        headers, body = to_binary(event)
        headers.update(tracing.http_headers(event.get(tracing.TRACEPARENT)))
        try:
            headers.update(self.credentials(url))
        except Exception as exc:  # the issuer is unreachable, say: retried like a failed POST
            log.warning("no credentials for %s: %s", url, exc)
            return Attempt(500, b"the platform could not get a service token", {})
        target = self._plain_http(url)
        if target is None:
            return self._post_urllib3(url, headers, body, timeout)
        host, port, path = target
        connection = self._local.by_address.get((host, port))
        if connection is None:
            connection = http.client.HTTPConnection(host, port, timeout=timeout)
            self._local.by_address[(host, port)] = connection
            with self._opened_lock:
                self._opened.add(connection)
        kept = connection.sock is not None
        if kept and wait_for_read(connection.sock, timeout=0.0):
            connection.close()  # closed by the subscriber while idle (or it sent garbage): a new one
            kept = False
        while True:
            try:
                connection.timeout = timeout
                if connection.sock is not None:
                    connection.sock.settimeout(timeout)
                connection.request("POST", path, body, headers)
                response = connection.getresponse()
                data = response.read(self.max_reply_bytes + 1)
                if not response.isclosed():  # the rest is never read: the connection cannot be reused
                    connection.close()
                    if len(data) <= self.max_reply_bytes and response.length:
                        raise http.client.IncompleteRead(data, response.length)  # cut short by the peer
            except (OSError, http.client.HTTPException) as exc:
                connection.close()  # a timed-out or broken exchange leaves the connection unusable
                if kept and isinstance(exc, _STALE):
                    # closed by the subscriber as it was reused: the request never got an answer, so
                    # send it once more on a new connection (at least once: a duplicate at worst)
                    log.debug("kept connection to %s:%d was closed (%s); reconnecting", host, port, exc)
                    kept = False
                    continue
                return Attempt(500, f"dispatch error: {type(exc).__name__}: {exc}".encode()[:2048], {})
            break
        status = response.status
        names = response.headers.keys()
        # the headers matter only to a reply: a body, or a binary-mode event with an empty body
        if data or any(name[:3].lower() == "ce-" for name in names):
            return Attempt(status, data, _merged(response.headers.items()))
        return Attempt(status, data, {})

    def _post_urllib3(self, url: str, headers: dict[str, str], body: bytes, timeout: float) -> Attempt:
        try:
            response = self._http.request(
                "POST",
                url,
                body=body,
                headers=headers,
                timeout=timeout,
                redirect=False,
                preload_content=False,
            )
            data = response.read(self.max_reply_bytes + 1)
        except urllib3.exceptions.HTTPError as exc:
            return Attempt(500, f"dispatch error: {type(exc).__name__}: {exc}".encode()[:2048], {})
        if len(data) > self.max_reply_bytes:
            response.close()  # the rest is never read: the connection cannot be reused
        else:
            response.release_conn()
        return Attempt(response.status, data, dict(response.headers))

    def _send_with_retries(
        self,
        url: str,
        event: CloudEvent,
        spec: DeliverySpec,
        label: str,
        stop: threading.Event,
        first: Attempt | None = None,
    ) -> tuple[int, Attempt]:
        attempt_no = 0
        while True:
            attempt_no += 1
            attempt = first if attempt_no == 1 and first is not None else self.post(url, event, spec.timeout)
            if attempt.ok or not attempt.retryable or attempt_no > spec.retry:
                return attempt_no, attempt
            metrics.delivery_retries.labels(label).inc()
            log.warning(
                "attempt %d to %s failed with %d; retrying",
                attempt_no,
                url,
                attempt.code,
                extra=_fields(event, trigger=label),
            )
            if stop.wait(spec.backoff(attempt_no)):
                return attempt_no, Attempt(0, b"", {})

    def deliver(
        self,
        event: CloudEvent,
        trigger: Trigger,
        stop: threading.Event | None = None,
        first: Attempt | None = None,
        started: float | None = None,
    ) -> DeliveryResult:
        """Deliver `event` to `trigger`'s subscriber: retries, dead letter and reply included.

        `stop` (default: the broker's stopping event) abandons the delivery between attempts, as ABORTED:
        the trigger was removed or changed, or the broker is closing. `first` is the outcome of a first
        attempt already made (see `attempt`), begun at `started` (`time.perf_counter()`).
        """
        stop = stop or self._stopping
        started = time.perf_counter() if started is None else started
        attempts, last = self._send_with_retries(
            trigger.subscriber, event, trigger.delivery, trigger.name, stop, first
        )
        if last.code == 0 and stop.is_set():
            return DeliveryResult(Outcome.ABORTED, attempts, None)
        if last.ok:
            return self._delivered(event, trigger, attempts, last, started)
        metrics.delivery_latency.labels(trigger.name).observe(time.perf_counter() - started)
        outcome = self.dead_letter(event, trigger, last, stop)
        return DeliveryResult(outcome, attempts, last)

    def attempt(self, event: CloudEvent, trigger: Trigger, started: float) -> DeliveryResult | Attempt:
        """Only the first attempt of `deliver`, begun at `started` (`time.perf_counter()`): its result
        when it succeeded (the reply, if any, published), else the failed attempt, to pass on to
        `deliver(first=..., started=...)`. One POST bounded by the trigger's timeout: no backoff, no
        dead letter.
        """
        first = self.post(trigger.subscriber, event, trigger.delivery.timeout)
        return self._delivered(event, trigger, 1, first, started) if first.ok else first

    def _delivered(
        self, event: CloudEvent, trigger: Trigger, attempts: int, last: Attempt, started: float
    ) -> DeliveryResult:
        metrics.delivery_latency.labels(trigger.name).observe(time.perf_counter() - started)
        metrics.events_delivered.labels(trigger.name).inc()
        self._handle_reply(event, trigger, last)
        return DeliveryResult(Outcome.DELIVERED, attempts, last)

    def dead_letter(
        self, event: CloudEvent, trigger: Trigger, last: Attempt, stop: threading.Event | None = None
    ) -> Outcome:
        """Hand the original event to the trigger's dead-letter sink; say what became of it."""
        stop = stop or self._stopping
        fields = _fields(event, trigger=trigger.name, code=last.code)
        sink = trigger.delivery.dead_letter_sink
        if sink:
            dead = event.with_attributes(**dead_letter_extensions(trigger.subscriber, last))
            _, answer = self._send_with_retries(sink, dead, trigger.delivery, trigger.name, stop)
            if answer.code == 0 and stop.is_set():
                return Outcome.ABORTED  # stopped while retrying the sink: not given up, redelivered later
            if answer.ok:
                metrics.events_dead_lettered.labels(trigger.name, "dead_letter_sink").inc()
                log.warning("event dead-lettered", extra=fields)
                return Outcome.DEAD_LETTERED
            log.error("dead-letter sink failed too (%s)", answer.code, extra=fields)
        else:
            log.error("delivery failed and the trigger has no dead-letter sink", extra=fields)
        metrics.events_dead_lettered.labels(trigger.name, "undeliverable").inc()
        return Outcome.UNDELIVERABLE

    def _handle_reply(self, event: CloudEvent, trigger: Trigger, answer: Attempt) -> None:
        if not answer.body and not any(k.lower().startswith("ce-") for k in answer.headers):
            return
        try:
            replies = parse_http(
                answer.headers, answer.body, max_bytes=self.max_reply_bytes, allow_batch=False
            )
        except (InvalidEvent, EventTooLarge) as exc:
            log.warning(
                "subscriber answered 2xx with a body that is not a CloudEvent; ignored (%s)",
                exc,
                extra=_fields(event, trigger=trigger.name),
            )
            return
        for reply in replies:
            self._publish_reply(broker_ttl.reply_to(event, reply))  # the loop guard counts on
            metrics.replies_published.labels(trigger.name).inc()
