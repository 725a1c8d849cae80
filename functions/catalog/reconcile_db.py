"""The reconciler's reads and writes of the catalog's database: records with their repair generation,
repairs done, stuck records given up, and each bucket's last pass summary."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError

from functions.catalog.reconcile import Record, as_utc
from functions.catalog.schema import images, passes, repairs, status


def read_records(engine: Engine, bucket: str) -> list[Record]:
    """Every row of the bucket, live or tombstone, with its repairs so far."""
    query = (
        select(images.c.key, status, images.c.updated_at, images.c.sequencer, images.c.deleted_at,
               repairs.c.generation, repairs.c.repaired_at)
        .select_from(images.outerjoin(repairs, repairs.c.id == images.c.id))
        .where(images.c.bucket == bucket)
    )  # fmt: skip
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        Record(
            r.key, str(r.status), r.updated_at, r.sequencer, r.deleted_at, r.generation or 0, r.repaired_at
        )
        for r in rows
    ]


def record_repair(engine: Engine, image_id: str, generation: int, when: datetime) -> None:
    """Remember a stuck record's repair (its generation names the next repair's event ids)."""
    with engine.begin() as conn:
        values = {"generation": generation, "repaired_at": when}
        if conn.execute(update(repairs).where(repairs.c.id == image_id).values(**values)).rowcount:
            return
        try:
            with conn.begin_nested():
                conn.execute(repairs.insert().values(id=image_id, **values))
        except IntegrityError:  # another pass recorded it first
            conn.execute(update(repairs).where(repairs.c.id == image_id).values(**values))


def give_up(engine: Engine, image_id: str, reason: str) -> bool:
    """Mark a stuck live record rejected with `reason`; False when it is no longer stuck."""
    live = (images.c.id == image_id) & images.c.deleted_at.is_(None) & images.c.reason.is_(None)
    with engine.begin() as conn:
        done = conn.execute(update(images).where(live).values(reason=reason, updated_at=datetime.now(UTC)))
        return bool(done.rowcount)


def save_summary(engine: Engine, bucket: str, finished_at: datetime, summary: dict[str, Any]) -> None:
    with engine.begin() as conn:
        values = {"finished_at": finished_at, "summary": summary}
        if not conn.execute(update(passes).where(passes.c.bucket == bucket).values(**values)).rowcount:
            try:
                with conn.begin_nested():
                    conn.execute(passes.insert().values(bucket=bucket, **values))
            except IntegrityError:
                conn.execute(update(passes).where(passes.c.bucket == bucket).values(**values))


def last_passes(engine: Engine) -> dict[str, tuple[datetime, dict[str, Any]]]:
    """bucket -> (when its last pass finished, its summary)."""
    with engine.connect() as conn:
        rows = conn.execute(select(passes.c.bucket, passes.c.finished_at, passes.c.summary)).all()
    return {r.bucket: (as_utc(r.finished_at), dict(r.summary)) for r in rows}
