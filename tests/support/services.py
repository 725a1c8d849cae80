"""External services the tests use: skipped with a reason on a laptop, required in CI."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import pytest

AMQP_URL = os.environ.get("DATAFROST_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
POSTGRES_URL = os.environ.get(
    "DATAFROST_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def services_required() -> bool:
    return os.environ.get("DATAFROST_REQUIRE_SERVICES") == "1"


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=2
        ):
            return True
    except OSError:
        return False


def require_service(name: str, url: str, default_port: int) -> str:
    """The URL when the service answers; else skip (or fail when DATAFROST_REQUIRE_SERVICES=1)."""
    if _reachable(url, default_port):
        return url
    reason = f"{name} is not reachable at {urlparse(url).hostname}:{urlparse(url).port or default_port}"
    if services_required():
        pytest.fail(f"{reason}, and DATAFROST_REQUIRE_SERVICES=1 says it must be", pytrace=False)
    pytest.skip(f"{reason} (set DATAFROST_TEST_{name.upper()}_URL to point at one)")


@contextmanager
def fresh_schema(server: str) -> Iterator[str]:
    """A URL whose connections see only a new schema of their own on the PostgreSQL `server`; the
    schema is dropped afterwards."""
    from sqlalchemy import create_engine, text

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in server else "?"
    try:
        yield f"{server}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def require_tool(name: str, install: str) -> str:
    """The tool's path when it is on PATH; else skip (or fail when DATAFROST_REQUIRE_SERVICES=1)."""
    import shutil

    path = shutil.which(name)
    if path is not None:
        return path
    reason = f"{name} is not installed (`{install}` installs it)"
    if services_required():
        pytest.fail(f"{reason}, and DATAFROST_REQUIRE_SERVICES=1 says it must be", pytrace=False)
    pytest.skip(reason)


# The design folder beside the repository (`../shared`): the CRD schemas and func's schema the
# manifests are validated against. DATAFROST_TEST_SHARED_DIR points elsewhere.
SHARED_DIR = Path(
    os.environ.get("DATAFROST_TEST_SHARED_DIR") or Path(__file__).resolve().parents[2].parent / "shared"
)


def require_shared(relative: str, what: str) -> Path:
    """`SHARED_DIR / relative` when it is there; else skip naming what is missing (or fail when
    DATAFROST_REQUIRE_SERVICES=1, as for a service)."""
    path = SHARED_DIR / relative
    if path.exists():
        return path
    reason = f"{what}: nothing at {path} (it comes with the design folder beside the repository, ../shared)"
    if services_required():
        pytest.fail(f"{reason}, and DATAFROST_REQUIRE_SERVICES=1 says it must be", pytrace=False)
    pytest.skip(f"{reason}; set DATAFROST_TEST_SHARED_DIR to point at one")
