"""Catalog reads: one image, filtered cursor pages, and near-duplicates by perceptual hash."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, Select, and_, func, or_, select

from functions.catalog.schema import images, status
from shared.errors import HttpError

MAX_PAGE = 200
STATUSES = ("processing", "ready", "rejected")


@dataclass(frozen=True)
class ImageFilter:
    """Query-string filters of GET /images; `from_args` names the bad one on error."""

    owner: str | None = None
    status: str | None = None
    format: str | None = None
    camera: str | None = None
    min_bytes: int | None = None
    max_bytes: int | None = None
    min_width: int | None = None
    max_width: int | None = None
    min_height: int | None = None
    max_height: int | None = None
    taken_after: datetime | None = None
    taken_before: datetime | None = None

    @classmethod
    def from_args(cls, args: Any, owner: str | None = None) -> ImageFilter:
        values: dict[str, Any] = {"owner": owner}
        for name in ("status", "format", "camera"):
            values[name] = args.get(name) or None
        if values["status"] and values["status"] not in STATUSES:
            raise HttpError(f"status must be one of {', '.join(STATUSES)}")
        if values["format"]:
            values["format"] = values["format"].upper()
        for name in ("min_bytes", "max_bytes", "min_width", "max_width", "min_height", "max_height"):
            raw = args.get(name)
            if raw not in (None, ""):
                if not raw.isdigit():
                    raise HttpError(f"{name} must be a non-negative integer, got {raw!r}")
                values[name] = int(raw)
        for name in ("taken_after", "taken_before"):
            raw = args.get(name)
            if raw:
                try:
                    values[name] = datetime.fromisoformat(raw.replace("Z", "+00:00"))
                except ValueError:
                    raise HttpError(f"{name} must be an ISO 8601 date or date-time, got {raw!r}") from None
        return cls(**values)

    def apply(self, query: Select[Any]) -> Select[Any]:
        c = images.c
        conditions: list[ColumnElement[bool]] = [c.deleted_at.is_(None)]
        exact = {"owner": c.owner, "format": c.format}
        conditions += [column == getattr(self, name) for name, column in exact.items() if getattr(self, name)]
        if self.status:
            conditions.append(status == self.status)
        if self.camera:
            conditions.append(c.camera.ilike(f"%{self.camera}%"))
        bounds = [
            (self.min_bytes, c.bytes, ">="), (self.max_bytes, c.bytes, "<="),
            (self.min_width, c.width, ">="), (self.max_width, c.width, "<="),
            (self.min_height, c.height, ">="), (self.max_height, c.height, "<="),
            (self.taken_after, c.taken_at, ">="), (self.taken_before, c.taken_at, "<="),
        ]  # fmt: skip
        for value, column, op in bounds:
            if value is not None:
                conditions.append(column >= value if op == ">=" else column <= value)
        return query.where(and_(*conditions))


def encode_cursor(created_at: datetime, image_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([created_at.isoformat(), image_id]).encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created, image_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(created), str(image_id)
    except (ValueError, TypeError):
        raise HttpError("cursor is not one this API returned") from None


def _record(row: Any) -> dict[str, Any]:
    m = row._mapping
    variants = [
        {k: v[k] for k in ("name", "width", "height", "format", "bytes")} for v in (m["variants"] or [])
    ]
    return {
        "id": m["id"], "bucket": m["bucket"], "key": m["key"], "owner": m["owner"],
        "status": m["status"], "reason": m["reason"],
        "width": m["width"], "height": m["height"], "format": m["format"], "mode": m["mode"],
        "bytes": m["bytes"], "sha256": m["sha256"], "phash": m["phash"],
        "dominant_color": m["dominant_color"], "frames": m["frames"], "exif": m["exif"] or {},
        "camera": m["camera"], "taken_at": _iso(m["taken_at"]), "variants": variants,
        "created_at": _iso(m["created_at"]), "updated_at": _iso(m["updated_at"]),
    }  # fmt: skip


def _iso(value: datetime | None) -> str | None:
    """RFC 3339; SQLite gives naive datetimes back, and every time the catalog stores is UTC."""
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


class CatalogReader:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def count_by_status(self) -> dict[str, int]:
        """Images (not deleted) per status, every status present (0 when none)."""
        query = select(status, func.count()).where(images.c.deleted_at.is_(None)).group_by(status)
        with self.engine.connect() as conn:
            counts = {str(name): int(n) for name, n in conn.execute(query)}
        return {name: counts.get(name, 0) for name in STATUSES}

    def get(self, image_id: str, owner: str | None = None) -> dict[str, Any] | None:
        query = select(images, status).where(images.c.id == image_id, images.c.deleted_at.is_(None))
        if owner is not None:
            query = query.where(images.c.owner == owner)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return _record(row) if row else None

    def variant(self, image_id: str, name: str, owner: str | None = None) -> dict[str, Any] | None:
        """The stored variant (with its bucket and key), or None."""
        query = select(images.c.variants).where(images.c.id == image_id, images.c.deleted_at.is_(None))
        if owner is not None:
            query = query.where(images.c.owner == owner)
        with self.engine.connect() as conn:
            variants = conn.execute(query).scalar()
        return next((v for v in variants or [] if v["name"] == name), None)

    def stored_objects(self, image_id: str) -> list[tuple[str, str]]:
        """(bucket, key) of the original and of every variant."""
        query = select(images.c.bucket, images.c.key, images.c.variants).where(images.c.id == image_id)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return []
        return [(row.bucket, row.key)] + [(v["bucket"], v["key"]) for v in row.variants or []]

    def page(
        self, filters: ImageFilter, cursor: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first; the cursor continues after the last image of the previous page."""
        query = filters.apply(select(images, status))
        if cursor:
            created, image_id = decode_cursor(cursor)
            c = images.c
            query = query.where(or_(c.created_at < created, and_(c.created_at == created, c.id < image_id)))
        query = query.order_by(images.c.created_at.desc(), images.c.id.desc()).limit(limit + 1)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
        return [_record(r) for r in rows], next_cursor

    def similar(
        self, image_id: str, max_distance: int, limit: int, owner: str | None
    ) -> list[dict[str, Any]]:
        """Images whose perceptual hash is within `max_distance` bits of this one's, nearest first."""
        origin = self.get(image_id, owner)
        if origin is None or not origin["phash"]:
            return []
        target = int(origin["phash"], 16)
        query = (
            ImageFilter(owner=owner)
            .apply(select(images, status))
            .where(images.c.phash.is_not(None), images.c.id != image_id)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        scored = sorted(((int(r.phash, 16) ^ target).bit_count(), r.id, r) for r in rows if r.phash)
        return [{**_record(r), "distance": d} for d, _, r in scored if d <= max_distance][:limit]
