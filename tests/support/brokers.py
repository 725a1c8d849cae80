"""The local broker backends, for tests that must hold on each: memory, the durable local broker
(its SQLite file in the test's tmp_path), and RabbitMQ (its topology deleted afterwards)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from uuid import uuid4

import pytest

from localplatform.broker.base import Broker
from localplatform.broker.durable import DurableBroker
from localplatform.broker.memory import MemoryBroker
from localplatform.broker.rabbitmq import RabbitMQBroker

BACKENDS = ["memory", "local", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)]


def started_broker(request: pytest.FixtureRequest, prefix: str) -> Iterator[Broker]:
    """The backend the fixture's parameter names, under a fresh name; closed (and on RabbitMQ its
    exchanges and queues deleted) afterwards, also when the test fails."""
    name = f"{prefix}-{uuid4().hex[:8]}"
    if request.param in ("memory", "local"):
        tmp_path = request.getfixturevalue("tmp_path")
        embedded = (
            MemoryBroker(name)
            if request.param == "memory"
            else DurableBroker(tmp_path / f"{name}.sqlite3", name)
        )
        try:
            yield embedded
        finally:
            embedded.close()
        return
    amqp_url = request.getfixturevalue("amqp_url")
    rabbit = RabbitMQBroker(amqp_url, name=name)
    try:
        yield rabbit
    finally:
        declared = [t.name for t in rabbit.triggers()]  # a removed trigger's queue went with it
        try:
            rabbit.close()
        finally:
            delete_platform_broker(amqp_url, name, declared)


def delete_platform_broker(amqp_url: str, name: str, triggers: Iterable[str] = ()) -> None:
    """Delete everything a `datafrost dev --broker amqp://...` under DATAFROST_BROKER_NAME=`name` may
    have declared: the queue of every registry trigger and of `triggers` (the test's own), the
    dead-letter queue, the MinIO source's queue and both exchanges. Deleting what does not exist is a
    no-op in RabbitMQ, so this is safe from a `finally` whatever point the test reached."""
    import pika

    from functions.registry import all_specs
    from localplatform.broker.rabbitmq import Topology

    topology = Topology(name)
    registry = [spec.trigger_name(t) for spec in all_specs() for t in spec.triggers]
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        for trigger in dict.fromkeys([*registry, *triggers]):
            channel.queue_delete(topology.queue(trigger))
        channel.queue_delete(topology.dead_letter_queue)
        channel.queue_delete(f"{topology.prefix}.{name}.minio-events")
        channel.exchange_delete(topology.exchange)
        channel.exchange_delete(topology.dead_letter_exchange)
    finally:
        connection.close()
