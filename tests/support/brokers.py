"""The local broker backends, for tests that must hold on each: memory, the durable local broker
(its SQLite file in the test's tmp_path), and RabbitMQ (its topology deleted afterwards)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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
    rabbit = RabbitMQBroker(request.getfixturevalue("amqp_url"), name=name)
    try:
        yield rabbit
    finally:
        rabbit.close()
        rabbit.delete_topology()


def delete_rabbitmq_broker(amqp_url: str, name: str, triggers: Sequence[str] = ()) -> None:
    """Remove a `datafrost dev` broker's exchanges and queues from RabbitMQ: the queues of the
    registry's triggers, of `triggers` (the test's own) and the dead letters."""
    import pika

    from functions.registry import all_specs
    from localplatform.broker.rabbitmq import Topology

    topology = Topology(name)
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        registry = [spec.trigger_name(t) for spec in all_specs() for t in spec.triggers]
        for trigger in [*registry, *triggers]:
            channel.queue_delete(topology.queue(trigger))
        channel.queue_delete(topology.dead_letter_queue)
        channel.exchange_delete(topology.exchange)
        channel.exchange_delete(topology.dead_letter_exchange)
    finally:
        connection.close()
