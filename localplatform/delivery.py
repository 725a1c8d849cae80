"""Delivery of one event to one trigger, following the Knative RabbitMQ broker's rules.

Binary-mode POST; 2xx is success; 5xx, 404, 408, 409, 429, timeouts and connection errors are retried
with backoff; other 4xx and 3xx are not. When retries run out (or at once for a failure that is not
retried) the original event goes to the dead-letter sink with `knativeerrordest`, `knativeerrorcode`
and `knativeerrordata`. A 2xx whose body is a CloudEvent is a reply, handed back to the broker.

`Dispatcher.step` makes one attempt and says when the next is due; `Dispatcher.deliver` steps through
to the end on one thread. A broker whose trigger needs no order (parallelism above 1) schedules the
steps instead, so a retrying event holds no delivery thread while it waits out its backoff.
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
from eventing.trigger import Trigger
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


@dataclass
class Delivery:
    """One event on its way to one trigger: attempts at its subscriber, then (when they failed) at the
    dead-letter sink; advanced one attempt at a time by `Dispatcher.step`."""

    event: CloudEvent
    trigger: Trigger
    started: float = 0.0  # `time.perf_counter()` at the first attempt (dispatch)
    attempts: int = 0  # made to the subscriber
    failed: Attempt | None = None  # the subscriber's final failure: the dead letter's turn
    dead_letter_attempts: int = 0


@dataclass(frozen=True)
class Pending:
    """Not finished: step the delivery again after `delay` seconds (its backoff)."""

    delay: float


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

    def step(self, delivery: Delivery) -> DeliveryResult | Pending:
        """Make `delivery`'s next attempt: one POST to the subscriber or, once the subscriber's attempts
        are over, to the dead-letter sink. Returns the result when the delivery is finished, else when
        to step it again (the backoff; 0 to dead-letter at once). Between steps the delivery holds no
        thread: whoever schedules the next step decides whether anything waits behind it.
        """
        if delivery.failed is None:
            return self._to_subscriber(delivery)
        return self._to_dead_letter_sink(delivery, delivery.failed)

    def _to_subscriber(self, delivery: Delivery) -> DeliveryResult | Pending:
        trigger, spec = delivery.trigger, delivery.trigger.delivery
        if delivery.attempts == 0:
            delivery.started = time.perf_counter()
        attempt = self.post(trigger.subscriber, delivery.event, spec.timeout)
        delivery.attempts += 1
        if attempt.ok:
            return self._delivered(delivery, attempt)
        if attempt.retryable and delivery.attempts <= spec.retry:
            return self._retry(delivery, trigger.subscriber, delivery.attempts, attempt)
        metrics.delivery_latency.labels(trigger.name).observe(time.perf_counter() - delivery.started)
        delivery.failed = attempt
        if spec.dead_letter_sink:
            return Pending(0.0)  # to the dead-letter sink next, without waiting
        log.error(
            "delivery failed and the trigger has no dead-letter sink",
            extra=_fields(delivery.event, trigger=trigger.name, code=attempt.code),
        )
        return self._undeliverable(delivery, attempt)

    def _to_dead_letter_sink(self, delivery: Delivery, failed: Attempt) -> DeliveryResult | Pending:
        """The original event, with Knative's error extensions, to the trigger's dead-letter sink."""
        trigger, spec = delivery.trigger, delivery.trigger.delivery
        sink = spec.dead_letter_sink
        assert sink is not None  # `_to_subscriber` hands over only when there is one
        dead = delivery.event.with_attributes(**dead_letter_extensions(trigger.subscriber, failed))
        answer = self.post(sink, dead, spec.timeout)
        delivery.dead_letter_attempts += 1
        fields = _fields(delivery.event, trigger=trigger.name, code=failed.code)
        if answer.ok:
            metrics.events_dead_lettered.labels(trigger.name, "dead_letter_sink").inc()
            log.warning("event dead-lettered", extra=fields)
            return DeliveryResult(Outcome.DEAD_LETTERED, delivery.attempts, failed)
        if answer.retryable and delivery.dead_letter_attempts <= spec.retry:
            return self._retry(delivery, sink, delivery.dead_letter_attempts, answer)
        log.error("dead-letter sink failed too (%s)", answer.code, extra=fields)
        return self._undeliverable(delivery, failed)

    def _retry(self, delivery: Delivery, url: str, attempt_no: int, attempt: Attempt) -> Pending:
        metrics.delivery_retries.labels(delivery.trigger.name).inc()
        log.warning(
            "attempt %d to %s failed with %d; retrying",
            attempt_no,
            url,
            attempt.code,
            extra=_fields(delivery.event, trigger=delivery.trigger.name),
        )
        return Pending(delivery.trigger.delivery.backoff(attempt_no))

    @staticmethod
    def _undeliverable(delivery: Delivery, failed: Attempt) -> DeliveryResult:
        metrics.events_dead_lettered.labels(delivery.trigger.name, "undeliverable").inc()
        return DeliveryResult(Outcome.UNDELIVERABLE, delivery.attempts, failed)

    def deliver(self, delivery: Delivery, stop: threading.Event | None = None) -> DeliveryResult:
        """Deliver to the end, retries, dead letter and reply included, waiting out each backoff on the
        caller's thread, which is held until the event is finished: what FIFO order (parallelism 1)
        needs. `stop` (default: the broker's stopping event) abandons it during a backoff, as ABORTED:
        the trigger was removed or changed, or the broker is closing.
        """
        stop = stop or self._stopping
        result = self.step(delivery)
        while isinstance(result, Pending):
            if stop.wait(result.delay):
                return DeliveryResult(Outcome.ABORTED, delivery.attempts, None)
            result = self.step(delivery)
        return result

    def _delivered(self, delivery: Delivery, last: Attempt) -> DeliveryResult:
        trigger = delivery.trigger
        metrics.delivery_latency.labels(trigger.name).observe(time.perf_counter() - delivery.started)
        metrics.events_delivered.labels(trigger.name).inc()
        self._handle_reply(delivery.event, trigger, last)
        return DeliveryResult(Outcome.DELIVERED, delivery.attempts, last)

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
