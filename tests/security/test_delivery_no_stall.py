"""One failing event must not stall a trigger's other events where their order does not matter.

The issue: each event failing with a retried status is tried six times, then dead-lettered; with one
delivery at a time per trigger every such event held up all users' uploads for ~12 s. Knative's RabbitMQ
broker has the same shape: its dispatcher (eventing-rabbitmq pkg/dispatcher/dispatcher.go,
`ConsumeFromQueue`) starts `WorkerCount` = the trigger's `rabbitmq.eventing.knative.dev/parallelism`
goroutines reading one channel, and each `dispatch` retries in-process (cloudevents sdk-go
`RequestWithRetries` sleeps each backoff) before it acks, so a retrying message holds its worker, and
with parallelism 1 the whole queue, until it is finished. DataFrost follows that for parallelism 1
(FIFO per trigger, DESIGN.md section 6: order has that price) and improves on it above 1: the retry
is scheduled (localplatform/broker/work_queue.py), the worker moves on, and the message stays
unacknowledged until its final outcome (so a crash redelivers it, as in the dispatcher).

Every broker test runs on the embedded MemoryBroker, the durable local broker and a RabbitMQBroker of
its own name (deleted afterwards), with real HTTP sinks. Nothing is timed: outcomes are compared by
the order in which the sinks saw them.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator
from uuid import uuid4

import pika
import pytest
from werkzeug.wrappers import Response

from deploy.broker import PARALLELISM_ANNOTATION
from deploy.broker import trigger as knative_trigger
from eventing.cloudevent import CloudEvent, new_event
from eventing.trigger import DeliverySpec, Trigger
from functions.registry import all_specs
from functions.spec import UNORDERED_PARALLELISM
from localplatform.broker.base import Broker
from localplatform.broker.rabbitmq import RabbitMQBroker
from localplatform.runner import function_triggers
from pipeline import events
from shared.settings import from_env
from tests.support.brokers import BACKENDS, started_broker
from tests.support.sink import Sink, status

TYPE = "io.datafrost.test.nostall"
SOURCE = "/tests/no-stall"
RETRY = 5  # DataFrost's default: six attempts, then the dead letter
DELAY = 0.05  # exponential: the failing events' backoffs add up to 0.1 + 0.2 + ... + 1.6 s
PARALLELISM = 2
FAILING = 3  # more failing events than workers: with retries held in the workers, all of them stall
HEALTHY = 10
IMAGE_FUNCTIONS = ("inspect", "thumbnail")
FAILURE_BODY = b"upstream unavailable"


@pytest.fixture(params=BACKENDS)
def broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    yield from started_broker(request, "test-nostall")


class Journal:
    """One order of what both sinks saw: ("attempt", id) at the subscriber, ("dead", id) at the
    dead-letter sink."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.entries: list[tuple[str, str]] = []

    def add(self, what: str, event: CloudEvent) -> None:
        with self._lock:
            self.entries.append((what, event.id))

    def snapshot(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self.entries)


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def event(label: str, n: int) -> CloudEvent:
    return new_event(TYPE, SOURCE, {"n": n}, id=f"{label}-{uuid4().hex[:8]}-{n}")


def trigger_to(sink: Sink, dead_letter_sink: Sink, parallelism: int, delay: float = DELAY) -> Trigger:
    return Trigger(
        name=f"t-{uuid4().hex[:10]}",
        subscriber=sink.url,
        filter={"type": TYPE},
        delivery=DeliverySpec(RETRY, "exponential", delay, 5.0, dead_letter_sink.url),
        parallelism=parallelism,
    )


def failing_subscriber(sink: Sink, dead_letter_sink: Sink, failing: set[str]) -> Journal:
    """`sink` answers 503 to the events in `failing` (retried, then dead-lettered), 204 to the rest."""
    journal = Journal()

    def subscriber(e: CloudEvent, n: int) -> Response:
        journal.add("attempt", e)
        return status(503, FAILURE_BODY) if e.id in failing else status(204)

    def dead_letters(e: CloudEvent, n: int) -> Response:
        journal.add("dead", e)
        return status(204)

    sink.answer = subscriber
    dead_letter_sink.answer = dead_letters
    return journal


def test_a_retrying_event_does_not_hold_up_the_others(
    broker: Broker, sink: Sink, dead_letter_sink: Sink
) -> None:
    """FAILING events that always answer 503 go first, then HEALTHY ones, on a trigger of parallelism 2:
    every healthy one is delivered, once, before any failing one's retries are exhausted (the
    dispatcher's in-worker retries would hold both workers through every backoff), and each failing one
    still gets exactly its 1 + RETRY attempts and one dead letter with Knative's error extensions."""
    bad = [event("bad", i) for i in range(FAILING)]
    good = [event("good", i) for i in range(HEALTHY)]
    journal = failing_subscriber(sink, dead_letter_sink, {e.id for e in bad})
    trigger = trigger_to(sink, dead_letter_sink, PARALLELISM)
    broker.set_trigger(trigger)

    broker.publish(bad)
    broker.publish(good)

    dead = dead_letter_sink.wait_for(FAILING, timeout=30)
    sink.wait_for(HEALTHY + FAILING * (1 + RETRY), timeout=30)
    seen = journal.snapshot()
    attempts = [event_id for what, event_id in seen if what == "attempt"]
    assert sorted(attempts.count(e.id) for e in good) == [1] * HEALTHY
    assert [attempts.count(e.id) for e in bad] == [1 + RETRY] * FAILING
    last_good = max(seen.index(("attempt", e.id)) for e in good)
    for e in bad:
        final_attempt = len(seen) - 1 - seen[::-1].index(("attempt", e.id))
        assert last_good < final_attempt, f"{e.id}'s retries ran out before the healthy events got through"
        assert seen.index(("dead", e.id)) > final_attempt
    assert sorted(d.event.id for d in dead) == sorted(e.id for e in bad)
    for d in dead:
        assert d.event.get("knativeerrorcode") == "503"
        assert d.event.get("knativeerrordest") == sink.url
        assert d.event.get("knativeerrordata") == base64.b64encode(FAILURE_BODY).decode()
    assert len(dead_letter_sink.received) == FAILING


def test_parallelism_1_keeps_order_and_pays_for_it(
    broker: Broker, sink: Sink, dead_letter_sink: Sink
) -> None:
    """With parallelism 1 the order rule wins: the event behind a failing one waits for its dead letter."""
    bad, good = event("bad", 0), event("good", 1)
    journal = failing_subscriber(sink, dead_letter_sink, {bad.id})
    trigger = trigger_to(sink, dead_letter_sink, 1, delay=0.005)
    broker.set_trigger(trigger)

    broker.publish([bad, good])

    sink.wait_for(2 + RETRY)
    assert journal.snapshot() == [
        *[("attempt", bad.id)] * (1 + RETRY),
        ("dead", bad.id),
        ("attempt", good.id),
    ]


@pytest.mark.rabbitmq
def test_a_scheduled_retry_is_not_acknowledged_early(
    amqp_url: str, sink: Sink, dead_letter_sink: Sink
) -> None:
    """A message waiting out its backoff off the workers is still unacknowledged: when the broker closes
    (or its process dies) RabbitMQ keeps it, and the next broker delivers it; nothing dead-lettered."""
    name = f"test-nostall-{uuid4().hex[:8]}"
    bad, good = event("bad", 0), [event("good", i) for i in range(3)]
    failing = {bad.id}
    journal = failing_subscriber(sink, dead_letter_sink, failing)
    trigger = trigger_to(sink, dead_letter_sink, PARALLELISM, delay=60.0)  # its retry waits a minute
    first = RabbitMQBroker(amqp_url, name=name)
    second: RabbitMQBroker | None = None
    try:
        first.set_trigger(trigger)
        first.publish([bad, *good])
        sink.wait_for(1 + len(good))  # every one tried once; the failing one now waits for its retry
        wait_until(lambda: first.backlog() == {trigger.name: 1}, "the healthy events to be acknowledged")
        first.close()

        connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        try:
            queue = connection.channel().queue_declare(first.topology.queue(trigger.name), passive=True)
            assert queue.method.message_count == 1
        finally:
            connection.close()

        failing.clear()  # the subscriber has recovered
        second = RabbitMQBroker(amqp_url, name=name)
        second.set_trigger(trigger)
        sink.wait_for(2 + len(good))
        assert [event_id for what, event_id in journal.snapshot() if what == "attempt"].count(bad.id) == 2
        assert sorted(sink.ids()) == sorted([bad.id, bad.id, *(e.id for e in good)])
        assert dead_letter_sink.received == []
    finally:
        first.close()
        if second is not None:
            second.close()
            second.delete_topology()
        else:
            first.delete_topology()


def test_the_image_functions_triggers_deliver_in_any_order() -> None:
    """inspect and thumbnail treat each image on its own: their uploads trigger has parallelism above 1,
    in the local broker's triggers and in the Knative Trigger's eventing-rabbitmq annotation."""
    specs = {spec.name: spec for spec in all_specs()}
    config = from_env({})
    for name in IMAGE_FUNCTIONS:
        (trigger,) = specs[name].triggers
        assert trigger.filter["type"] == events.OBJECT_CREATED
        assert trigger.parallelism == UNORDERED_PARALLELISM > 1
        resource = knative_trigger(specs[name], trigger, config)
        assert resource["metadata"]["annotations"][PARALLELISM_ANNOTATION] == str(UNORDERED_PARALLELISM)
    local = {t.name: t for t in function_triggers(tuple(specs.values()), "http://127.0.0.1:1", config)}
    for name in IMAGE_FUNCTIONS:
        assert local[f"{name}-uploads"].parallelism == UNORDERED_PARALLELISM
