"""Database engines by URL (SQLite by default, PostgreSQL by URL), created on first use."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import Engine, create_engine, event

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def sqlite_url(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def _tune_sqlite(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def engine(url: str) -> Engine:
    """One pooled engine per URL for the life of the process."""
    with _lock:
        existing = _engines.get(url)
        if existing is not None:
            return existing
        created = create_engine(url, pool_pre_ping=True)
        if created.dialect.name == "sqlite":
            event.listen(created, "connect", _tune_sqlite)
        _engines[url] = created
        return created
