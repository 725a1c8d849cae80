"""Fixtures every test may use: real HTTP sinks and the external services (RabbitMQ, PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.services import AMQP_URL, require_service
from tests.support.sink import Sink


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink()
    yield s
    s.close()


@pytest.fixture
def dead_letter_sink() -> Iterator[Sink]:
    s = Sink()
    yield s
    s.close()


@pytest.fixture
def amqp_url() -> str:
    return require_service("amqp", AMQP_URL, 5672)
