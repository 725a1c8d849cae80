"""Fixtures every test may use: real HTTP sinks and the external services (RabbitMQ, PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.s3 import s3_url  # noqa: F401 (a session fixture every test may use)
from tests.support.services import AMQP_URL, POSTGRES_URL, fresh_schema, require_service
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


@pytest.fixture
def postgres_url() -> str:
    return require_service("postgres", POSTGRES_URL, 5432)


@pytest.fixture
def postgres_schema_url() -> Iterator[str]:
    """A URL whose connections see only a fresh schema of their own on the PostgreSQL server."""
    with fresh_schema(require_service("postgres", POSTGRES_URL, 5432)) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database: SQLite in tmp_path, or its own schema on the PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return str(request.getfixturevalue("postgres_schema_url"))
