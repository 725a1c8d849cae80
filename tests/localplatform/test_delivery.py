"""Delivery rules (DESIGN.md section 6) through real HTTP to a sink, on every broker backend.

Every test runs against the embedded MemoryBroker, the durable local broker (its SQLite file in
tmp_path) and a RabbitMQBroker with a fresh name (its own exchange and queues, deleted afterwards).
Backoff delays are tens of milliseconds so the suite is fast; "not delivered" is checked with a
sentinel event published afterwards on the same FIFO path wherever that is possible, instead of
sleeping and hoping.
"""

from __future__ import annotations

import base64
import itertools
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from uuid import uuid4

import pytest
from prometheus_client import REGISTRY
from werkzeug.wrappers import Response

from eventing.cloudevent import CloudEvent, new_event
from eventing.http_codec import to_binary, to_structured
from eventing.trigger import BackoffPolicy, DeliverySpec, Trigger
from localplatform.broker.base import Broker
from localplatform.broker.durable import DurableBroker
from localplatform.broker.rabbitmq import RabbitMQBroker
from tests.support.brokers import BACKENDS, started_broker
from tests.support.sink import Answer, Received, Sink, status

TYPE = "io.datafrost.test.delivery"
REPLY_TYPE = "io.datafrost.test.reply"
SOURCE = "/tests/delivery"
DELAY = 0.02
UNDELIVERABLE = "datafrost_broker_events_dead_lettered_total"


# -- fixtures and helpers ---------------------------------------------------------------------------
@pytest.fixture(params=BACKENDS)
def broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    yield from started_broker(request, "test")


@pytest.fixture
def make_sink() -> Iterator[Callable[[], Sink]]:
    """More sinks than the two conftest offers; all closed at teardown."""
    sinks: list[Sink] = []

    def make() -> Sink:
        sinks.append(Sink())
        return sinks[-1]

    yield make
    for s in sinks:
        s.close()


def trigger_to(
    subscriber: str,
    *,
    filter: Mapping[str, str] | None = None,
    retry: int = 3,
    policy: BackoffPolicy = "exponential",
    delay: float = DELAY,
    timeout: float = 2.0,
    dead_letter_sink: str | None = None,
    parallelism: int = 1,
) -> Trigger:
    """A trigger with a unique name (so its metrics start at zero) and a fast delivery spec."""
    return Trigger(
        name=f"t-{uuid4().hex[:10]}",
        subscriber=subscriber,
        filter={"type": TYPE} if filter is None else dict(filter),
        delivery=DeliverySpec(retry, policy, delay, timeout, dead_letter_sink),
        parallelism=parallelism,
    )


def event(n: int = 0, *, type: str = TYPE, **extensions: str) -> CloudEvent:
    subject = extensions.pop("subject", None)
    return new_event(
        type, SOURCE, {"n": n}, id=f"ev-{uuid4().hex[:8]}-{n}", subject=subject, extensions=extensions
    )


def fail_first(k: int, code: int, body: bytes = b"") -> Answer:
    """Answer `code` to the first `k` attempts of every event, then 204."""
    return lambda e, n: status(code, body) if n <= k else status(204)


def sample(metric: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(metric, labels) or 0.0


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def wait_idle(broker: Broker, trigger: Trigger) -> None:
    """Until the trigger has nothing queued or in flight (seen twice, 50 ms apart)."""
    deadline = time.monotonic() + 10
    quiet = 0
    while quiet < 2:
        if time.monotonic() > deadline:
            raise AssertionError(f"trigger {trigger.name} still busy: {broker.backlog()}")
        quiet = quiet + 1 if broker.backlog().get(trigger.name, 0) == 0 else 0
        time.sleep(0.05)


def closed_port_url() -> str:
    """An http URL on which nothing listens: every POST is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def ids(received: list[Received]) -> list[str]:
    return [r.event.id for r in received]


# -- retries ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("code", [500, 503, 404, 408, 409, 429])
def test_retried_status_is_retried_until_success(
    broker: Broker, sink: Sink, dead_letter_sink: Sink, code: int
) -> None:
    sink.answer = fail_first(2, code, b"try again")
    trigger = trigger_to(sink.url, retry=3, dead_letter_sink=dead_letter_sink.url)
    broker.set_trigger(trigger)
    sent = event()
    broker.publish([sent])

    sink.wait_for(3)
    wait_idle(broker, trigger)
    assert ids(sink.received) == [sent.id] * 3
    assert sample("datafrost_broker_delivery_retries_total", trigger=trigger.name) == 2
    assert sample("datafrost_broker_events_delivered_total", trigger=trigger.name) == 1
    assert dead_letter_sink.received == []


def test_timeout_is_retried(broker: Broker, sink: Sink, dead_letter_sink: Sink) -> None:
    def slow_first(e: CloudEvent, n: int) -> Response:
        if n == 1:
            time.sleep(0.6)
        return status(204)

    sink.answer = slow_first
    trigger = trigger_to(sink.url, retry=2, timeout=0.2, dead_letter_sink=dead_letter_sink.url)
    broker.set_trigger(trigger)
    sent = event()
    broker.publish([sent])

    sink.wait_for(2)
    wait_idle(broker, trigger)
    assert ids(sink.received) == [sent.id] * 2
    assert sample("datafrost_broker_events_delivered_total", trigger=trigger.name) == 1
    assert dead_letter_sink.received == []


def test_timeouts_exhausted_dead_letter_as_500(broker: Broker, sink: Sink, dead_letter_sink: Sink) -> None:
    def always_slow(e: CloudEvent, n: int) -> Response:
        time.sleep(0.4)
        return status(204)

    sink.answer = always_slow
    trigger = trigger_to(sink.url, retry=1, timeout=0.1, dead_letter_sink=dead_letter_sink.url)
    broker.set_trigger(trigger)
    sent = event()
    broker.publish([sent])

    (dead,) = dead_letter_sink.wait_for(1)
    assert ids(sink.received) == [sent.id] * 2
    assert dead.event.id == sent.id
    assert dead.event.get("knativeerrorcode") == "500"
    assert dead.event.get("knativeerrordest") == sink.url


def test_connection_refused_is_retried_then_dead_lettered(broker: Broker, dead_letter_sink: Sink) -> None:
    url = closed_port_url()
    trigger = trigger_to(url, retry=2, dead_letter_sink=dead_letter_sink.url)
    broker.set_trigger(trigger)
    sent = event()
    broker.publish([sent])

    (dead,) = dead_letter_sink.wait_for(1)
    assert sample("datafrost_broker_delivery_retries_total", trigger=trigger.name) == 2
    assert dead.event.id == sent.id
    assert dead.event.get("knativeerrordest") == url
    assert dead.event.get("knativeerrorcode") == "500"
    assert base64.b64decode(dead.event.get("knativeerrordata") or "").startswith(b"dispatch error")


@pytest.mark.parametrize("code", [400, 403, 302])
def test_not_retried_status_goes_straight_to_dead_letter(
    broker: Broker, sink: Sink, dead_letter_sink: Sink, code: int
) -> None:
    # a 3xx carries a Location: the dispatcher must neither follow it nor retry
    sink.answer = lambda e, n: Response(b"refused", status=code, headers={"Location": f"{sink.url}/moved"})
    trigger = trigger_to(sink.url, retry=3, dead_letter_sink=dead_letter_sink.url)
    broker.set_trigger(trigger)
    sent = event()
    broker.publish([sent])

    (dead,) = dead_letter_sink.wait_for(1)
    assert [(r.event.id, r.path) for r in sink.received] == [(sent.id, "/")]
    assert dead.event.get("knativeerrorcode") == str(code)
    assert dead.event.get("knativeerrordata") == base64.b64encode(b"refused").decode()
    assert sample("datafrost_broker_delivery_retries_total", trigger=trigger.name) == 0
    wait_idle(broker, trigger)
    assert len(sink.received) == 1 and len(dead_letter_sink.received) == 1


# -- backoff ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("policy", "delay", "expected_gaps"),
    [
        ("exponential", 0.05, [0.1, 0.2, 0.4]),  # delay * 2^n after failed attempt n
        ("linear", 0.1, [0.1, 0.2, 0.3]),  # delay * n
    ],
)
def test_backoff_follows_the_formula(
    broker: Broker, sink: Sink, policy: BackoffPolicy, delay: float, expected_gaps: list[float]
) -> None:
    sink.answer = fail_first(3, 503)
    trigger = trigger_to(sink.url, retry=3, policy=policy, delay=delay)
    broker.set_trigger(trigger)
    broker.publish([event()])

    arrivals = [r.at for r in sink.wait_for(4)]
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    for gap, expected in zip(gaps, expected_gaps, strict=True):
        assert expected - 0.005 <= gap <= expected * 1.5 + 0.04, (gaps, expected_gaps)


# -- dead letters -----------------------------------------------------------------------------------
@pytest.mark.parametrize("retry", [0, 2])
def test_dead_letter_after_last_retry_keeps_the_event_and_adds_the_error(
    broker: Broker, sink: Sink, dead_letter_sink: Sink, retry: int
) -> None:
    body = bytes(range(256)) * 6  # 1536 bytes: 2048 chars of base64, over the 1024-char limit
    sink.answer = lambda e, n: status(500, body)
    trigger = trigger_to(sink.url, retry=retry, dead_letter_sink=dead_letter_sink.url)
    broker.set_trigger(trigger)
    sent = event(7, bucket="images")
    broker.publish([sent])

    (dead,) = dead_letter_sink.wait_for(1)
    assert ids(sink.received) == [sent.id] * (retry + 1)
    error_data = base64.b64encode(body).decode()[:1024]
    assert dict(dead.event.attributes) == {
        **sent.attributes,
        "knativebrokerttl": "255",  # set by the broker's loop guard, kept on delivery
        "knativeerrordest": sink.url,
        "knativeerrorcode": "500",
        "knativeerrordata": error_data,
    }
    assert dead.event.data == sent.data
    assert len(error_data) == 1024
    wait_until(
        lambda: sample(UNDELIVERABLE, trigger=trigger.name, outcome="dead_letter_sink") == 1,
        "the dead-lettered counter",
    )
    assert sample(UNDELIVERABLE, trigger=trigger.name, outcome="undeliverable") == 0
    wait_idle(broker, trigger)
    assert len(sink.received) == retry + 1 and len(dead_letter_sink.received) == 1


def test_without_dead_letter_sink_the_event_is_counted_and_kept(broker: Broker, sink: Sink) -> None:
    sink.answer = lambda e, n: status(503)
    trigger = trigger_to(sink.url, retry=1)
    broker.set_trigger(trigger)
    broker.publish([event()])

    sink.wait_for(2)
    wait_until(
        lambda: sample(UNDELIVERABLE, trigger=trigger.name, outcome="undeliverable") == 1,
        "the undeliverable counter",
    )
    if isinstance(broker, RabbitMQBroker | DurableBroker):  # they keep what was delivered nowhere
        wait_until(lambda: broker.dead_letter_count() == 1, "the event in the dead-letter queue")
    wait_idle(broker, trigger)
    assert len(sink.received) == 2


def test_failing_dead_letter_sink_counts_the_event_undeliverable(
    broker: Broker, sink: Sink, dead_letter_sink: Sink
) -> None:
    sink.answer = lambda e, n: status(400)
    dead_letter_sink.answer = lambda e, n: status(500)
    trigger = trigger_to(sink.url, retry=1, dead_letter_sink=dead_letter_sink.url)
    broker.set_trigger(trigger)
    sent = event()
    broker.publish([sent])

    dead_letter_sink.wait_for(2)  # the dead-letter sink is retried like the subscriber
    wait_until(
        lambda: sample(UNDELIVERABLE, trigger=trigger.name, outcome="undeliverable") == 1,
        "the undeliverable counter",
    )
    assert sample(UNDELIVERABLE, trigger=trigger.name, outcome="dead_letter_sink") == 0
    if isinstance(broker, RabbitMQBroker | DurableBroker):  # they keep what was delivered nowhere
        wait_until(lambda: broker.dead_letter_count() == 1, "the event in the dead-letter queue")
    assert ids(sink.received) == [sent.id]


def test_closing_while_dead_lettering_does_not_give_the_event_up(
    broker: Broker, sink: Sink, dead_letter_sink: Sink
) -> None:
    sink.answer = lambda e, n: status(400)
    dead_letter_sink.answer = lambda e, n: status(503)
    trigger = trigger_to(
        sink.url, retry=50, policy="linear", delay=0.05, dead_letter_sink=dead_letter_sink.url
    )
    broker.set_trigger(trigger)
    broker.publish([event()])

    dead_letter_sink.wait_for(2)
    broker.close()
    assert sample(UNDELIVERABLE, trigger=trigger.name, outcome="undeliverable") == 0
    if isinstance(broker, RabbitMQBroker | DurableBroker):  # durable backends
        assert broker.dead_letter_count() == 0
        assert broker.backlog() == {trigger.name: 1}  # back in its queue, to be redelivered


# -- replies ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_reply_event_is_published_and_routed(
    broker: Broker, sink: Sink, make_sink: Callable[[], Sink], mode: str
) -> None:
    reply = new_event(REPLY_TYPE, "/tests/replier", {"answer": 42}, id=f"reply-{uuid4().hex[:8]}")
    headers, body = to_binary(reply) if mode == "binary" else to_structured(reply)
    sink.answer = lambda e, n: Response(body, status=200, headers=headers)
    replies = make_sink()
    first = trigger_to(sink.url)
    second = trigger_to(replies.url, filter={"type": REPLY_TYPE})
    broker.set_trigger(first)
    broker.set_trigger(second)
    sent = event()
    broker.publish([sent])

    (got,) = replies.wait_for(1)
    assert got.event.id == reply.id
    assert got.event.source == reply.source
    assert got.event.json() == {"answer": 42}
    wait_idle(broker, first)
    assert sample("datafrost_broker_replies_published_total", trigger=first.name) == 1
    wait_idle(broker, second)
    assert ids(sink.received) == [sent.id]  # the reply's type does not match the first trigger
    assert ids(replies.received) == [reply.id]


def test_empty_2xx_ends_the_delivery(broker: Broker, sink: Sink, make_sink: Callable[[], Sink]) -> None:
    sink.answer = lambda e, n: status(200)
    everything = make_sink()
    first = trigger_to(sink.url)
    catch_all = trigger_to(everything.url, filter={})
    broker.set_trigger(first)
    broker.set_trigger(catch_all)
    sent = event()
    broker.publish([sent])

    sink.wait_for(1)
    wait_until(lambda: broker.backlog()[first.name] == 0, "the first delivery to finish")
    sentinel = event(1, type="io.datafrost.test.sentinel")
    broker.publish([sentinel])
    everything.wait_for(2)
    wait_idle(broker, catch_all)
    assert ids(everything.received) == [sent.id, sentinel.id]
    assert sample("datafrost_broker_replies_published_total", trigger=first.name) == 0
    assert sample("datafrost_broker_events_delivered_total", trigger=first.name) == 1


# -- filters ----------------------------------------------------------------------------------------
def test_filter_is_exact_case_sensitive_and_on_every_attribute(broker: Broker, sink: Sink) -> None:
    trigger = trigger_to(
        sink.url, filter={"type": TYPE, "source": SOURCE, "subject": "a.jpg", "bucket": "images"}
    )
    broker.set_trigger(trigger)
    match = event(0, subject="a.jpg", bucket="images", other="x")  # extra attributes do not matter
    misses = [
        event(1, type=TYPE.upper(), subject="a.jpg", bucket="images"),
        event(2, subject="A.jpg", bucket="images"),
        event(3, subject="a.jpg", bucket="Images"),
        event(4, subject="a.jpg", bucket="images2"),
        event(5, subject="a.jpg"),  # extension absent
        event(6, bucket="images"),  # subject absent
        new_event(TYPE, SOURCE + "/", id="ev-source", subject="a.jpg", extensions={"bucket": "images"}),
    ]
    last = event(9, subject="a.jpg", bucket="images")
    broker.publish([match, *misses, last])

    sink.wait_for(2)
    wait_idle(broker, trigger)
    assert ids(sink.received) == [match.id, last.id]


def test_filter_on_datacontenttype(broker: Broker, sink: Sink) -> None:
    trigger = trigger_to(sink.url, filter={"type": TYPE, "datacontenttype": "image/png"})
    broker.set_trigger(trigger)
    json_event = event(0)
    png = new_event(TYPE, SOURCE, b"\x89PNG", id=f"png-{uuid4().hex[:8]}", datacontenttype="image/png")
    broker.publish([json_event, png])

    (got,) = sink.wait_for(1)
    wait_idle(broker, trigger)
    assert got.event.id == png.id and got.event.data == b"\x89PNG"
    assert ids(sink.received) == [png.id]


def test_each_matching_trigger_gets_the_event_and_unmatched_events_go_nowhere(
    broker: Broker, make_sink: Callable[[], Sink]
) -> None:
    a1, a2, b = make_sink(), make_sink(), make_sink()
    on_a1 = trigger_to(a1.url, filter={"type": "io.a"})
    on_a2 = trigger_to(a2.url, filter={"type": "io.a", "source": SOURCE})
    on_b = trigger_to(b.url, filter={"type": "io.b"})
    for t in (on_a1, on_a2, on_b):
        broker.set_trigger(t)
    first_a, first_b, nowhere = event(0, type="io.a"), event(1, type="io.b"), event(2, type="io.c")
    second_a, second_b = event(3, type="io.a"), event(4, type="io.b")
    broker.publish([first_a, first_b, nowhere, second_a, second_b])

    a1.wait_for(2)
    a2.wait_for(2)
    b.wait_for(2)
    for t in (on_a1, on_a2, on_b):
        wait_idle(broker, t)
    assert ids(a1.received) == [first_a.id, second_a.id]
    assert ids(a2.received) == [first_a.id, second_a.id]
    assert ids(b.received) == [first_b.id, second_b.id]


# -- ordering and parallelism -----------------------------------------------------------------------
def test_parallelism_1_keeps_order_through_retries(broker: Broker, sink: Sink) -> None:
    delivered: list[str] = []

    def flaky(e: CloudEvent, n: int) -> Response:
        if e.json()["n"] % 7 == 3 and n <= 2:
            return status(503)
        delivered.append(e.id)
        return status(204)

    sink.answer = flaky
    trigger = trigger_to(sink.url, retry=3, delay=0.005, parallelism=1)
    broker.set_trigger(trigger)
    events = [event(i) for i in range(50)]
    for e in events:
        broker.publish([e])

    flaky_count = sum(1 for i in range(50) if i % 7 == 3)
    sink.wait_for(50 + 2 * flaky_count)
    wait_idle(broker, trigger)
    assert delivered == [e.id for e in events]
    assert len(sink.received) == 50 + 2 * flaky_count


def test_parallelism_4_delivers_everything_concurrently(broker: Broker, sink: Sink) -> None:
    lock = threading.Lock()
    running = 0
    peak = 0

    def slow(e: CloudEvent, n: int) -> Response:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.03)
        with lock:
            running -= 1
        return status(204)

    sink.answer = slow
    trigger = trigger_to(sink.url, parallelism=4)
    broker.set_trigger(trigger)
    events = [event(i) for i in range(50)]
    broker.publish(events)

    sink.wait_for(50)
    wait_idle(broker, trigger)
    assert sorted(ids(sink.received)) == sorted(e.id for e in events)
    assert 2 <= peak <= 4


# -- trigger lifecycle ------------------------------------------------------------------------------
def test_removing_a_trigger_stops_delivery(broker: Broker, sink: Sink, make_sink: Callable[[], Sink]) -> None:
    witness = make_sink()
    trigger = trigger_to(sink.url)
    broker.set_trigger(trigger)
    broker.set_trigger(trigger_to(witness.url))
    before = event(0)
    broker.publish([before])
    sink.wait_for(1)

    assert broker.remove_trigger(trigger.name) is True
    assert broker.remove_trigger(trigger.name) is False
    assert trigger.name not in [t.name for t in broker.triggers()]
    after = event(1)
    broker.publish([after])
    witness.wait_for(2)
    time.sleep(0.1)
    assert ids(sink.received) == [before.id]


def test_removing_a_trigger_drops_its_backlog(broker: Broker, sink: Sink) -> None:
    def slow(e: CloudEvent, n: int) -> Response:
        time.sleep(0.3)
        return status(204)

    sink.answer = slow
    trigger = trigger_to(sink.url)
    broker.set_trigger(trigger)
    broker.publish([event(i) for i in range(5)])
    sink.wait_for(1)

    assert broker.remove_trigger(trigger.name) is True
    time.sleep(0.7)  # without the removal, two more would arrive in this time
    assert len(sink.received) == 1  # only the one in flight at removal


def test_removing_a_trigger_stops_its_retries(broker: Broker, sink: Sink, dead_letter_sink: Sink) -> None:
    sink.answer = lambda e, n: status(503)
    trigger = trigger_to(
        sink.url, retry=50, policy="linear", delay=0.05, dead_letter_sink=dead_letter_sink.url
    )
    broker.set_trigger(trigger)
    broker.publish([event()])
    sink.wait_for(2)

    started = time.monotonic()
    assert broker.remove_trigger(trigger.name) is True
    assert time.monotonic() - started < 1.0
    attempts = len(sink.received)
    time.sleep(0.5)  # without the removal, 3 more attempts would arrive in this time
    assert len(sink.received) <= attempts + 1  # at most the one that was already on its way
    assert dead_letter_sink.received == []


def test_closing_after_changing_a_trigger_stops_all_retries(broker: Broker, sink: Sink) -> None:
    sink.answer = lambda e, n: status(503)
    trigger = trigger_to(sink.url, retry=50, policy="linear", delay=0.05)
    broker.set_trigger(trigger)
    broker.publish([event()])
    sink.wait_for(2)
    broker.set_trigger(Trigger(trigger.name, sink.url, trigger.filter, trigger.delivery, parallelism=2))

    broker.close()
    attempts = len(sink.received)
    time.sleep(0.5)  # without the close, 3 more attempts would arrive in this time
    assert len(sink.received) <= attempts + 1  # at most the one that was already on its way


def test_setting_the_same_trigger_again_is_a_no_op(broker: Broker, sink: Sink) -> None:
    def slow(e: CloudEvent, n: int) -> Response:
        time.sleep(0.02)
        return status(204)

    sink.answer = slow
    trigger = trigger_to(sink.url)
    broker.set_trigger(trigger)
    events = [event(i) for i in range(10)]
    broker.publish(events)
    sink.wait_for(2)
    threads = {t for t in threading.enumerate() if trigger.name in t.name}
    assert threads

    broker.set_trigger(Trigger.from_json(trigger.to_json()))  # equal, not the same object
    assert broker.triggers() == [trigger]
    assert {t for t in threading.enumerate() if trigger.name in t.name} == threads
    sink.wait_for(10)
    wait_idle(broker, trigger)
    assert ids(sink.received) == [e.id for e in events]
