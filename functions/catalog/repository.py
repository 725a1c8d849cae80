"""Catalog writes (one per event type, each idempotent) and reads (filters, cursor pages, similarity)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.exc import IntegrityError

from functions.catalog.schema import create_or_upgrade, images
from pipeline import filenames
from pipeline.events import ImageAnalyzed, ImageRejected, ImageThumbnailed, ObjectCreated, ObjectRemoved
from pipeline.ownership import owner_of
from shared.objectstore import InvalidKey, check_bucket, check_key
from shared.sql_values import column_problem

WRITE_ATTEMPTS = 5


class UnstorableValue(ValueError):
    """A value from an event that its column cannot hold (the event can never be recorded)."""


def check_storable(values: Mapping[str, Any]) -> None:
    """Raise UnstorableValue, naming the field, unless every value fits its column of `images`."""
    for name, value in values.items():
        problem = column_problem(images.c[name], value)
        if problem is not None:
            raise UnstorableValue(f"{name} {problem}")


def check_object_name(bucket: str, key: str) -> None:
    """Raise UnstorableValue unless a store can hold an object so named (a record of one no store
    holds would never leave `processing`)."""
    try:
        check_key(key)
        if bucket:
            check_bucket(bucket)
    except InvalidKey as exc:
        raise UnstorableValue(str(exc)) from None


def _now() -> datetime:
    return datetime.now(UTC)


def sequencer_after(new: str | None, old: str | None) -> bool:
    """True when `new` is a later object version than `old` (MinIO sequencers are hex nanoseconds)."""
    if not old:
        return True
    if not new:
        return False
    try:
        return int(new, 16) > int(old, 16)
    except ValueError:
        return (len(new), new) > (len(old), old)


def original_name(created: ObjectCreated) -> str:
    """The uploader's file name (object metadata), else the name the key ends with."""
    return filenames.from_metadata(created.user_metadata) or created.key.rsplit("/", 1)[-1]


def _taken_at(exif: Mapping[str, Any]) -> datetime | None:
    raw = exif.get("date_taken")
    if not isinstance(raw, str):
        return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _camera(exif: Mapping[str, Any]) -> str | None:
    """ "Make Model", without the make twice when the model already starts with it (Canon's do)."""
    make, model = (str(exif.get(k) or "").strip() for k in ("make", "model"))
    if make and model.lower().startswith(make.lower()):
        return model
    return " ".join(p for p in (make, model) if p) or None


class CatalogWriter:
    """Applies events to the catalog. Every method may run twice or out of order with the same result."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        create_or_upgrade(engine)

    def _write(self, conn: Connection, image_id: str, bucket: str, key: str, values: dict[str, Any]) -> bool:
        """Update the live row, or insert one; a deleted image is left alone. False when nothing was written.

        Another transaction may insert the same image between our statements (PostgreSQL, READ
        COMMITTED): the row then shows up live on the next look, and the update is tried again.
        """
        check_storable({"id": image_id, "bucket": bucket, "key": key, "owner": owner_of(key), **values})
        check_object_name(bucket, key)
        values = {**values, "updated_at": _now()}
        live = (images.c.id == image_id) & images.c.deleted_at.is_(None)
        for _ in range(WRITE_ATTEMPTS):
            if conn.execute(update(images).where(live).values(**values)).rowcount:
                return True
            existing = conn.execute(select(images.c.deleted_at).where(images.c.id == image_id)).first()
            if existing is not None:
                if existing.deleted_at is not None:
                    return False  # a late event for a removed version
                continue  # committed by another transaction since our update: update it now
            row = {"id": image_id, "bucket": bucket, "key": key, "owner": owner_of(key), "created_at": _now()}
            try:
                with conn.begin_nested():
                    conn.execute(images.insert().values(**row, **values))
                return True
            except IntegrityError:  # inserted by another transaction first: update it
                continue
        raise RuntimeError(f"could not write image {image_id} after {WRITE_ATTEMPTS} attempts")

    def object_created(self, image_id: str, created: ObjectCreated) -> None:
        with self.engine.begin() as conn:
            current = conn.execute(
                select(images.c.deleted_at, images.c.removed_sequencer, images.c.sequencer).where(
                    images.c.id == image_id
                )
            ).first()
            if current is not None and current.deleted_at is not None:
                if not sequencer_after(created.sequencer, current.removed_sequencer):
                    return  # a redelivered create of the version that was removed
                fresh = {
                    c.name: None for c in images.columns if c.name not in ("id", "bucket", "key", "owner")
                }
                fresh.pop("created_at")
                fresh.pop("updated_at")
                conn.execute(update(images).where(images.c.id == image_id).values(**fresh, created_at=_now()))
            self._write(
                conn,
                image_id,
                created.bucket,
                created.key,
                {
                    "sequencer": created.sequencer,
                    "content_type": created.content_type,
                    "bytes": created.size,
                    "filename": original_name(created),
                },
            )

    def analyzed(self, event: ImageAnalyzed) -> None:
        values = {
            "width": event.width,
            "height": event.height,
            "format": event.format,
            "mode": event.mode,
            "bytes": event.bytes,
            "sha256": event.sha256,
            "phash": event.phash,
            "dominant_color": event.dominant_color,
            "frames": event.frames,
            "exif": dict(event.exif),
            "camera": _camera(event.exif),
            "taken_at": _taken_at(event.exif),
            "analyzed_at": _now(),
        }
        with self.engine.begin() as conn:
            self._write(conn, event.image_id, event.bucket, event.key, values)

    def thumbnailed(self, event: ImageThumbnailed) -> None:
        variants = [
            {"name": v.name, "bucket": v.bucket, "key": v.key, "width": v.width, "height": v.height,
             "format": v.format, "bytes": v.bytes}
            for v in event.variants
        ]  # fmt: skip
        with self.engine.begin() as conn:
            self._write(
                conn,
                event.image_id,
                event.bucket,
                event.key,
                {"variants": variants, "thumbnailed_at": _now()},
            )

    def rejected(self, event: ImageRejected) -> None:
        with self.engine.begin() as conn:
            self._write(conn, event.image_id, event.bucket, event.key, {"reason": event.reason})

    def removed(self, image_id: str, event: ObjectRemoved) -> None:
        """The original is gone: the image is deleted (a tombstone keeps late events from reviving it)."""
        with self.engine.begin() as conn:
            row = conn.execute(select(images.c.sequencer).where(images.c.id == image_id)).first()
            if row is not None and row.sequencer and not sequencer_after(event.sequencer, row.sequencer):
                return  # the removal of an older version than the one catalogued
            self.mark_deleted(conn, image_id, event.sequencer, event.bucket, event.key)

    def mark_deleted(
        self, conn: Connection, image_id: str, sequencer: str | None, bucket: str = "", key: str = ""
    ) -> None:
        check_storable({"id": image_id, "bucket": bucket, "key": key, "removed_sequencer": sequencer})
        if key:
            check_object_name(bucket, key)
        values = {"deleted_at": _now(), "updated_at": _now(), "removed_sequencer": sequencer}
        if conn.execute(update(images).where(images.c.id == image_id).values(**values)).rowcount == 0 and key:
            conn.execute(
                images.insert().values(
                    id=image_id, bucket=bucket, key=key, owner=owner_of(key), created_at=_now(), **values
                )
            )
