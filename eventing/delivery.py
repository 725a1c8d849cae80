"""Delivery of one event to one trigger, following the Knative RabbitMQ broker's rules.

Binary-mode POST; 2xx is success; 5xx, 404, 408, 409, 429, timeouts and connection errors are retried
with backoff; other 4xx and 3xx are not. When retries run out (or at once for a failure that is not
retried) the original event goes to the dead-letter sink with `knativeerrordest`, `knativeerrorcode`
and `knativeerrordata`. A 2xx whose body is a CloudEvent is a reply, handed back to the broker.
"""

from __future__ import annotations

import base64
import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import urllib3

from eventing.cloudevent import CloudEvent
from eventing.http_codec import parse_http, to_binary
from eventing.trigger import DeliverySpec, Trigger
from eventing.validation import EventTooLarge, InvalidEvent
from shared import metrics
from shared.logging import log_fields

log = logging.getLogger("datafrost.delivery")

RETRIED_4XX = frozenset({404, 408, 409, 429})
ERROR_DATA_MAX_CHARS = 1024
REPLY_MAX_BYTES = 4 * 1024 * 1024


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
        return self.code >= 500 or self.code in RETRIED_4XX


@dataclass(frozen=True)
class DeliveryResult:
    outcome: Outcome
    attempts: int
    last: Attempt | None


def is_retryable(code: int) -> bool:
    return code >= 500 or code in RETRIED_4XX


def dead_letter_extensions(destination: str, attempt: Attempt) -> dict[str, str]:
    """The extensions Knative adds to a dead-lettered event."""
    extensions = {"knativeerrordest": destination, "knativeerrorcode": str(attempt.code)}
    if attempt.body:
        extensions["knativeerrordata"] = base64.b64encode(attempt.body).decode()[:ERROR_DATA_MAX_CHARS]
    return extensions


class Dispatcher:
    """Sends events to subscribers over pooled HTTP connections; safe to share between threads."""

    def __init__(self, publish_reply: Callable[[CloudEvent], None], stopping: threading.Event) -> None:
        self._publish_reply = publish_reply
        self._stopping = stopping
        self._http = urllib3.PoolManager(num_pools=64, maxsize=16, retries=False)

    def close(self) -> None:
        self._http.clear()

    def post(self, url: str, event: CloudEvent, timeout: float) -> Attempt:
        """One binary-mode POST; connection errors and timeouts become a 500, as Knative reports them."""
        headers, body = to_binary(event)
        try:
            response = self._http.request(
                "POST", url, body=body, headers=headers, timeout=timeout, redirect=False, preload_content=True
            )
        except urllib3.exceptions.HTTPError as exc:
            return Attempt(500, f"dispatch error: {type(exc).__name__}: {exc}".encode()[:2048], {})
        return Attempt(response.status, response.data, dict(response.headers))

    def _send_with_retries(
        self, url: str, event: CloudEvent, spec: DeliverySpec, label: str, stop: threading.Event
    ) -> tuple[int, Attempt]:
        attempt_no = 0
        while True:
            attempt_no += 1
            attempt = self.post(url, event, spec.timeout)
            if attempt.ok or not attempt.retryable or attempt_no > spec.retry:
                return attempt_no, attempt
            metrics.delivery_retries.labels(label).inc()
            if stop.wait(spec.backoff(attempt_no)):
                return attempt_no, Attempt(0, b"", {})

    def deliver(
        self, event: CloudEvent, trigger: Trigger, stop: threading.Event | None = None
    ) -> DeliveryResult:
        """Deliver `event` to `trigger`'s subscriber: retries, dead letter and reply included.

        `stop` (default: the broker's stopping event) abandons the delivery between attempts, as ABORTED:
        the trigger was removed or changed, or the broker is closing.
        """
        stop = stop or self._stopping
        started = time.perf_counter()
        attempts, last = self._send_with_retries(
            trigger.subscriber, event, trigger.delivery, trigger.name, stop
        )
        if last.code == 0 and stop.is_set():
            return DeliveryResult(Outcome.ABORTED, attempts, None)
        metrics.delivery_latency.labels(trigger.name).observe(time.perf_counter() - started)
        if last.ok:
            metrics.events_delivered.labels(trigger.name).inc()
            self._handle_reply(event, trigger, last)
            return DeliveryResult(Outcome.DELIVERED, attempts, last)
        outcome = self.dead_letter(event, trigger, last, stop)
        return DeliveryResult(outcome, attempts, last)

    def dead_letter(
        self, event: CloudEvent, trigger: Trigger, last: Attempt, stop: threading.Event | None = None
    ) -> Outcome:
        """Hand the original event to the trigger's dead-letter sink; say what became of it."""
        stop = stop or self._stopping
        fields = log_fields(trigger=trigger.name, event_id=event.id, event_type=event.type, code=last.code)
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
            replies = parse_http(answer.headers, answer.body, max_bytes=REPLY_MAX_BYTES, allow_batch=False)
        except (InvalidEvent, EventTooLarge) as exc:
            log.warning(
                "subscriber answered 2xx with a body that is not a CloudEvent; ignored (%s)",
                exc,
                extra=log_fields(trigger=trigger.name, event_id=event.id),
            )
            return
        for reply in replies:
            self._publish_reply(reply)
            metrics.replies_published.labels(trigger.name).inc()
