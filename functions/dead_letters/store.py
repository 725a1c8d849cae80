"""The dead-letters table: each event a trigger could not deliver, with Knative's error extensions."""

from __future__ import annotations

import base64
import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, DateTime, Integer, LargeBinary, MetaData, String, Table, Text, select
from sqlalchemy import delete as sql_delete
from sqlalchemy.exc import IntegrityError

from eventing.cloudevent import CloudEvent
from shared.db import engine

ERROR_EXTENSIONS = ("knativeerrordest", "knativeerrorcode", "knativeerrordata")
LETTER_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")  # str(uuid4())

metadata = MetaData()
dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("dedupe_key", String(512), unique=True, nullable=False),
    Column("event_id", String(256), nullable=False),
    Column("event_type", String(256), nullable=False),
    Column("event_source", String(512), nullable=False),
    Column("destination", Text, nullable=False),
    Column("code", Integer, nullable=False),
    Column("error", Text, nullable=False),
    Column("attributes", Text, nullable=False),
    Column("data", LargeBinary, nullable=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("replayed_at", DateTime(timezone=True), nullable=True),
)


@dataclass(frozen=True)
class DeadLetter:
    id: str
    event: CloudEvent  # the original event, error extensions removed
    destination: str
    code: int
    error: str
    received_at: datetime
    replayed_at: datetime | None

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event_id": self.event.id,
            "type": self.event.type,
            "source": self.event.source,
            "destination": self.destination,
            "code": self.code,
            "error": self.error,
            "received_at": self.received_at.isoformat(),
            "replayed_at": self.replayed_at.isoformat() if self.replayed_at else None,
        }


def is_letter_id(text: str) -> bool:
    """True for text shaped like the ids `add` gives."""
    return LETTER_ID.fullmatch(text) is not None


def _decode_error(raw: str | None) -> str:
    if not raw:
        return ""
    try:
        return base64.b64decode(raw + "=" * (-len(raw) % 4)).decode("utf-8", errors="replace")
    except ValueError:
        return raw


class DeadLetterStore:
    def __init__(self, url: str) -> None:
        self._engine = engine(url)
        metadata.create_all(self._engine)

    def add(self, event: CloudEvent) -> str:
        """Keep a dead-lettered event; the same event from the same destination is kept once."""
        attrs = dict(event.attributes)
        destination = attrs.pop("knativeerrordest", "")
        code = attrs.pop("knativeerrorcode", "0")
        error = _decode_error(attrs.pop("knativeerrordata", None))
        dedupe_key = json.dumps([event.source, event.id, destination])
        row_id = str(uuid.uuid4())
        row = {
            "id": row_id,
            "dedupe_key": dedupe_key,
            "event_id": event.id,
            "event_type": event.type,
            "event_source": event.source,
            "destination": destination,
            "code": int(code) if code.lstrip("-").isdigit() else 0,
            "error": error,
            "attributes": json.dumps(attrs, sort_keys=True),
            "data": event.data,
            "received_at": datetime.now(UTC),
        }
        try:
            with self._engine.begin() as conn:
                conn.execute(dead_letters.insert().values(**row))
        except IntegrityError:
            with self._engine.connect() as conn:
                existing = conn.execute(
                    select(dead_letters.c.id).where(dead_letters.c.dedupe_key == dedupe_key)
                ).scalar_one()
            return str(existing)
        return row_id

    def list(self, limit: int = 100, event_type: str | None = None) -> list[DeadLetter]:
        query = select(dead_letters).order_by(dead_letters.c.received_at).limit(limit)
        if event_type:
            query = query.where(dead_letters.c.event_type == event_type)
        with self._engine.connect() as conn:
            return [_from_row(r._mapping) for r in conn.execute(query)]

    def get(self, letter_id: str) -> DeadLetter | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(dead_letters).where(dead_letters.c.id == letter_id)).first()
        return _from_row(row._mapping) if row else None

    def mark_replayed(self, letter_id: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                dead_letters.update()
                .where(dead_letters.c.id == letter_id)
                .values(replayed_at=datetime.now(UTC))
            )

    def delete(self, letter_id: str) -> bool:
        with self._engine.begin() as conn:
            return conn.execute(sql_delete(dead_letters).where(dead_letters.c.id == letter_id)).rowcount > 0


def _utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every time stored here is UTC."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _from_row(row: Any) -> DeadLetter:
    return DeadLetter(
        id=row["id"],
        event=CloudEvent(json.loads(row["attributes"]), row["data"]),
        destination=row["destination"],
        code=row["code"],
        error=row["error"],
        received_at=_utc(row["received_at"]) or datetime.now(UTC),
        replayed_at=_utc(row["replayed_at"]),
    )
