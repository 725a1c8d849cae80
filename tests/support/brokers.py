"""Both local broker backends, for tests that must hold on each: memory, and RabbitMQ (its topology
deleted afterwards)."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import uuid4

import pytest

from localplatform.broker.base import Broker
from localplatform.broker.memory import MemoryBroker
from localplatform.broker.rabbitmq import RabbitMQBroker

BACKENDS = ["memory", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)]


def started_broker(request: pytest.FixtureRequest, prefix: str) -> Iterator[Broker]:
    """The backend the fixture's parameter names, under a fresh name; closed (and on RabbitMQ its
    exchanges and queues deleted) afterwards, also when the test fails."""
    name = f"{prefix}-{uuid4().hex[:8]}"
    if request.param == "memory":
        memory = MemoryBroker(name)
        yield memory
        memory.close()
        return
    rabbit = RabbitMQBroker(request.getfixturevalue("amqp_url"), name=name)
    try:
        yield rabbit
    finally:
        rabbit.close()
        rabbit.delete_topology()
