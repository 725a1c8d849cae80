"""The RabbitMQ broker's topology, inspected with pika: eventing-rabbitmq's layout, durability, no loss."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from uuid import uuid4

import pika
import pika.exceptions
import pytest
from pika.adapters.blocking_connection import BlockingChannel
from werkzeug.wrappers import Response

from eventing.amqp_codec import from_amqp, to_amqp
from eventing.broker_ttl import admitted
from eventing.cloudevent import CloudEvent, new_event
from eventing.http_codec import to_binary
from eventing.trigger import DeliverySpec, Trigger
from localplatform.broker.rabbitmq import RabbitMQBroker
from tests.support.sink import Sink, status

pytestmark = pytest.mark.rabbitmq
TYPE = "io.datafrost.test.rabbitmq"
FILTER = {"type": TYPE, "bucket": "images"}


@pytest.fixture
def brokers(amqp_url: str) -> Iterator[Callable[[str], RabbitMQBroker]]:
    """Makes RabbitMQBrokers (several may share a name); closed, their topology deleted, at teardown."""
    made: list[RabbitMQBroker] = []

    def make(name: str) -> RabbitMQBroker:
        made.append(RabbitMQBroker(amqp_url, name=name))
        return made[-1]

    yield make
    for broker in reversed(made):
        broker.close()
    if made:
        made[-1].delete_topology()


@pytest.fixture
def broker(brokers: Callable[[str], RabbitMQBroker]) -> RabbitMQBroker:
    return brokers(f"test-{uuid4().hex[:8]}")


@pytest.fixture
def channel(amqp_url: str) -> Iterator[BlockingChannel]:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    yield connection.channel()
    if connection.is_open:
        connection.close()


def fast_trigger(subscriber: str, name: str = "images", retry: int = 3, delay: float = 0.02) -> Trigger:
    return Trigger(name, subscriber, dict(FILTER), DeliverySpec(retry, "linear", delay, 2.0, None))


def event(n: int = 0, **extensions: str) -> CloudEvent:
    return new_event(TYPE, "/tests/rabbitmq", {"n": n}, id=f"ev-{uuid4().hex[:8]}-{n}", extensions=extensions)


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def ready_count(channel: BlockingChannel, queue: str) -> int:
    return int(channel.queue_declare(queue, passive=True).method.message_count)


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def refused_with_406(declare: Callable[[BlockingChannel], object], amqp_url: str) -> bool:
    """Whether RabbitMQ refuses a redeclaration as inequivalent (406), on a throwaway channel."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        declare(connection.channel())
    except pika.exceptions.ChannelClosedByBroker as exc:
        return exc.reply_code == 406
    finally:
        if connection.is_open:
            connection.close()
    return False


def test_exchange_is_headers_and_trigger_queue_is_durable(
    broker: RabbitMQBroker, sink: Sink, channel: BlockingChannel, amqp_url: str
) -> None:
    trigger = fast_trigger(sink.url)
    broker.set_trigger(trigger)
    t = broker.topology
    queue_arguments = {"x-dead-letter-exchange": t.dead_letter_exchange, "x-queue-type": "classic"}

    # a redeclaration succeeds only when equivalent: type, durability and arguments all match
    channel.exchange_declare(t.exchange, exchange_type="headers", durable=True)
    channel.queue_declare(t.queue(trigger.name), durable=True, arguments=queue_arguments)
    channel.exchange_declare(t.dead_letter_exchange, exchange_type="fanout", durable=True)
    channel.queue_declare(t.dead_letter_queue, durable=True, arguments={"x-queue-type": "classic"})
    assert refused_with_406(
        lambda c: c.exchange_declare(t.exchange, exchange_type="topic", durable=True), amqp_url
    )
    assert refused_with_406(lambda c: c.exchange_declare(t.exchange, exchange_type="headers"), amqp_url)
    assert refused_with_406(
        lambda c: c.queue_declare(t.queue(trigger.name), durable=False, arguments=queue_arguments), amqp_url
    )
    assert refused_with_406(lambda c: c.queue_declare(t.queue(trigger.name), durable=True), amqp_url)


def test_binding_is_x_match_all_on_the_filter(
    broker: RabbitMQBroker, sink: Sink, channel: BlockingChannel
) -> None:
    broker.set_trigger(fast_trigger(sink.url))
    t = broker.topology
    channel.confirm_delivery()

    def routed(e: CloudEvent) -> bool:
        """Publish as the broker does, mandatory: RabbitMQ returns it when it matches no binding."""
        message = to_amqp(e)
        properties = pika.BasicProperties(headers=message.headers, content_type=message.content_type)
        try:
            channel.basic_publish(t.exchange, "", message.body, properties, mandatory=True)
        except pika.exceptions.UnroutableError:
            return False
        return True

    assert routed(event(0, bucket="images"))
    assert routed(event(1, bucket="images", other="x"))
    assert not routed(event(2))  # x-match any would route this one: type alone matches
    assert not routed(event(3, bucket="Images"))
    # a binding is identified by its arguments: only the exact ones remove it
    channel.queue_unbind(t.queue("images"), t.exchange, arguments={"x-match": "any", **FILTER})
    channel.queue_unbind(t.queue("images"), t.exchange, arguments={"x-match": "all", "type": TYPE})
    assert routed(event(4, bucket="images"))
    channel.queue_unbind(t.queue("images"), t.exchange, arguments={"x-match": "all", **FILTER})
    assert not routed(event(5, bucket="images"))
    sink.wait_for(3)


def test_published_messages_are_persistent(broker: RabbitMQBroker, channel: BlockingChannel) -> None:
    observer = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(observer, broker.topology.exchange, arguments={"x-match": "all"})
    sent = event(0, bucket="images")
    broker.publish([sent])

    method, properties, body = channel.basic_get(observer, auto_ack=True)
    assert method is not None
    assert properties.delivery_mode == pika.DeliveryMode.Persistent.value
    assert properties.message_id == sent.id
    assert from_amqp(properties.headers, body, properties.content_type) == admitted(sent)  # TTL 255 added


def test_undeliverable_event_is_kept_intact_in_the_dead_letter_queue(
    broker: RabbitMQBroker, sink: Sink, channel: BlockingChannel
) -> None:
    sink.answer = lambda e, n: status(500)
    broker.set_trigger(fast_trigger(sink.url, retry=0))
    sent = event(0, bucket="images")
    broker.publish([sent])

    wait_until(lambda: broker.dead_letter_count() == 1, "the dead-lettered message")
    method, properties, body = channel.basic_get(broker.topology.dead_letter_queue, auto_ack=True)
    assert method is not None
    assert properties.delivery_mode == pika.DeliveryMode.Persistent.value
    assert properties.headers["x-death"][0]["reason"] == "rejected"  # nacked by the consumer, not expired
    assert from_amqp(properties.headers, body, properties.content_type) == admitted(sent)
    assert len(sink.received) == 1


def test_close_keeps_undelivered_events_for_the_next_instance(
    brokers: Callable[[str], RabbitMQBroker], sink: Sink, channel: BlockingChannel
) -> None:
    name = f"test-{uuid4().hex[:8]}"
    first = brokers(name)
    first.set_trigger(fast_trigger(closed_port_url(), retry=100, delay=0.05))  # subscriber down
    events = [event(i, bucket="images") for i in range(5)]
    first.publish(events)
    wait_until(lambda: first.backlog() == {"images": 5}, "the backlog")
    first.close()
    wait_until(
        lambda: ready_count(channel, first.topology.queue("images")) == 5, "5 messages back in the queue"
    )
    assert first.dead_letter_count() == 0

    second = brokers(name)
    second.set_trigger(fast_trigger(sink.url))
    sink.wait_for(5)
    wait_until(lambda: second.backlog() == {"images": 0}, "an empty backlog")
    assert [r.event for r in sink.received] == [admitted(e) for e in events]


def test_a_delivery_whose_reply_was_not_stored_goes_back_to_its_queue(
    brokers: Callable[[str], RabbitMQBroker], sink: Sink, channel: BlockingChannel
) -> None:
    """A reply is published before the event is acked: when the closing broker refuses it, the event is
    requeued (not dead-lettered) and the next instance delivers it again, reply and all. (Found by the
    fault test: a thumbnail's reply refused at Ctrl-C left its image `processing` for good.)"""
    name = f"test-{uuid4().hex[:8]}"
    reply = new_event("io.datafrost.test.reply", "/tests/replier", {"ok": True}, id="reply-1")
    headers, body = to_binary(reply)
    first = brokers(name)
    closing = threading.Thread(target=first.close)
    answered = threading.Event()

    def reply_while_closing(e: CloudEvent, n: int) -> Response:
        if n == 1:  # the broker starts closing before the subscriber answers
            closing.start()
            wait_until(first._stopping.is_set, "the broker to start closing")
            answered.set()
        return Response(body, status=200, headers=headers)

    sink.answer = reply_while_closing  # type: ignore[assignment]
    first.set_trigger(fast_trigger(sink.url))
    sent = event(0, bucket="images")
    first.publish([sent])
    assert answered.wait(10)
    closing.join(30)
    wait_until(lambda: ready_count(channel, first.topology.queue("images")) == 1, "the event requeued")
    assert first.dead_letter_count() == 0

    replies = Sink()
    try:
        second = brokers(name)
        second.set_trigger(
            Trigger("replies", replies.url, {"type": reply.type}, DeliverySpec(3, "linear", 0.02))
        )
        second.set_trigger(fast_trigger(sink.url))
        (got,) = replies.wait_for(1)
        assert got.event.id == reply.id
        assert [r.event.id for r in sink.received] == [sent.id, sent.id]
    finally:
        replies.close()


def test_changing_a_trigger_keeps_its_backlog_and_redelivers_nothing(
    broker: RabbitMQBroker, sink: Sink
) -> None:
    def slow(e: CloudEvent, n: int) -> Response:
        time.sleep(0.3)
        return status(204)

    sink.answer = slow
    trigger = fast_trigger(sink.url)
    broker.set_trigger(trigger)
    events = [event(i, bucket="images") for i in range(3)]
    broker.publish(events)
    sink.wait_for(1)  # the first is in flight: its answer comes while the consumer stops

    broker.set_trigger(Trigger(trigger.name, sink.url, trigger.filter, trigger.delivery, parallelism=2))
    sink.wait_for(3)
    wait_until(lambda: broker.backlog() == {trigger.name: 0}, "an empty backlog")
    time.sleep(0.2)
    assert sorted(r.event.id for r in sink.received) == sorted(e.id for e in events)
