"""MinioAmqpSource against a real RabbitMQ and a real storage-events: messages published the way
MinIO's AMQP target does reach the broker through storage-events' /rabbitmq route, as on Knative."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel

from eventing.cloudevent import CloudEvent
from localplatform.minio_amqp import MinioAmqpSource
from pipeline.events import OBJECT_CREATED, OBJECT_REMOVED
from pipeline.minio_codec import ObjectRef, cloudevents_from_notification, notification_for
from shared.objectstore.local import LocalObjectStore
from tests.support.functions import ServedFunction
from tests.support.sink import Sink, status

pytestmark = pytest.mark.rabbitmq
ROUTING_KEY = "minio.events"


@pytest.fixture
def broker() -> Iterator[Sink]:
    sink = Sink()
    yield sink
    sink.close()


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    """The store storage-events checks each notification against."""
    return LocalObjectStore(tmp_path / "buckets")


@pytest.fixture
def storage_events(broker: Sink, tmp_path: Path) -> Iterator[ServedFunction]:
    """storage-events in its own process (auth off: tokens are the platform's business, tested in
    tests/e2e), its K_SINK a real sink standing in for the broker ingress."""
    env = {"K_SINK": broker.url, "DATAFROST_AUTH": "off", "DATAFROST_DATA_DIR": str(tmp_path)}
    served = ServedFunction("storage-events", env)
    yield served
    served.stop()


def published(broker: Sink, count: int) -> list[CloudEvent]:
    """The object events storage-events published to the broker, once `count` arrived."""
    return [r.event for r in broker.wait_for(count)]


@pytest.fixture
def names(amqp_url: str) -> Iterator[tuple[str, str]]:
    """A unique (exchange, queue) pair, deleted afterwards."""
    suffix = uuid4().hex[:8]
    exchange, queue = f"test.minio.{suffix}", f"test.minio.{suffix}.datafrost"
    yield exchange, queue
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    channel.queue_delete(queue)
    channel.exchange_delete(exchange)
    connection.close()


@pytest.fixture
def channel(amqp_url: str) -> Iterator[BlockingChannel]:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    publisher = connection.channel()
    publisher.confirm_delivery()  # MinIO's publisher_confirms=on: a publish returns once RabbitMQ has it
    yield publisher
    if connection.is_open:
        connection.close()


@pytest.fixture
def sources(
    amqp_url: str, names: tuple[str, str], storage_events: ServedFunction
) -> Iterator[Callable[[], MinioAmqpSource]]:
    """Start a source posting to storage-events' /rabbitmq route, as the platform wires it."""
    started: list[MinioAmqpSource] = []

    def start() -> MinioAmqpSource:
        exchange, queue = names
        sink = storage_events.url + "/rabbitmq"
        source = MinioAmqpSource(amqp_url, exchange, ROUTING_KEY, queue, sink, retry_delay=0.05)
        started.append(source.start())
        return source

    yield start
    for source in started:
        source.stop()


def minio_publish(channel: BlockingChannel, exchange: str, body: dict[str, Any] | bytes) -> None:
    """What MinIO's AMQP target sends: JSON body, `minio-bucket` / `minio-event` headers."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"minio-bucket": "uploads", "minio-event": "s3:ObjectCreated:Put"}
    properties = pika.BasicProperties(content_type="application/json", delivery_mode=2, headers=headers)
    channel.basic_publish(exchange, ROUTING_KEY, raw, properties)


def created(store: LocalObjectStore, key: str) -> dict[str, Any]:
    """MinIO's notification of `key`, written into the store (storage-events publishes what it holds)."""
    moment = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    info = store.put("uploads", key, b"png", "image/png")
    return notification_for("s3:ObjectCreated:Put", info, "17CE1A2B3C4D5E6F", event_time=moment)


def queue_depth(channel: BlockingChannel, queue: str) -> int:
    return int(channel.queue_declare(queue, durable=True, passive=True).method.message_count)


def test_notifications_reach_the_broker_through_storage_events(
    sources: Callable[[], MinioAmqpSource],
    channel: BlockingChannel,
    names: tuple[str, str],
    broker: Sink,
    store: LocalObjectStore,
) -> None:
    sources()
    minio_publish(channel, names[0], created(store, "a b/c.png"))
    minio_publish(
        channel, names[0], notification_for("s3:ObjectRemoved:Delete", ObjectRef("uploads", "old.png"), "1")
    )
    first, second = published(broker, 2)
    assert (first.type, first.subject, first.get("bucket")) == (OBJECT_CREATED, "a b/c.png", "uploads")
    assert (second.type, second.subject) == (OBJECT_REMOVED, "old.png")
    assert (
        first.id == cloudevents_from_notification(created(store, "a b/c.png"))[0].id
    )  # the webhook's id too


def test_a_failed_publish_is_requeued_and_retried(
    sources: Callable[[], MinioAmqpSource],
    channel: BlockingChannel,
    names: tuple[str, str],
    broker: Sink,
    store: LocalObjectStore,
) -> None:
    broker.answer = lambda event, n: status(503 if n <= 2 else 202)  # storage-events answers 503 twice
    sources()
    minio_publish(channel, names[0], created(store, "retry.png"))
    attempts = published(broker, 3)
    assert [e.subject for e in attempts] == ["retry.png"] * 3 and len({e.id for e in attempts}) == 1
    time.sleep(0.2)
    assert queue_depth(channel, names[1]) == 0 and len(broker.received) == 3


def test_a_malformed_message_is_dropped_and_the_next_goes_through(
    sources: Callable[[], MinioAmqpSource],
    channel: BlockingChannel,
    names: tuple[str, str],
    broker: Sink,
    store: LocalObjectStore,
) -> None:
    sources()
    minio_publish(channel, names[0], b"not json")  # storage-events answers 400: never retried
    minio_publish(channel, names[0], {"Records": "nope"})
    minio_publish(channel, names[0], created(store, "fine.png"))
    (event,) = published(broker, 1)
    assert event.subject == "fine.png"
    time.sleep(0.2)
    assert queue_depth(channel, names[1]) == 0 and len(broker.received) == 1


def test_messages_sent_while_the_consumer_is_down_are_kept(
    sources: Callable[[], MinioAmqpSource],
    channel: BlockingChannel,
    names: tuple[str, str],
    broker: Sink,
    store: LocalObjectStore,
) -> None:
    sources().stop()
    minio_publish(channel, names[0], created(store, "while-down.png"))
    assert queue_depth(channel, names[1]) == 1
    sources()
    assert [e.subject for e in published(broker, 1)] == ["while-down.png"]


def test_an_exchange_minio_made_is_used_as_it_is(
    sources: Callable[[], MinioAmqpSource],
    channel: BlockingChannel,
    names: tuple[str, str],
    broker: Sink,
    store: LocalObjectStore,
) -> None:
    channel.exchange_declare(names[0], "fanout", durable=False)  # MinIO's own choice of type/durability
    sources()
    minio_publish(channel, names[0], created(store, "fanout.png"))
    assert [e.subject for e in published(broker, 1)] == ["fanout.png"]


def test_repr_leaves_the_url_out() -> None:
    source = MinioAmqpSource("amqp://user:hunter2@127.0.0.1:5672/", "x", "k", "q", "http://127.0.0.1:9/")
    assert "hunter2" not in repr(source)
