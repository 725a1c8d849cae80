"""Catalog reads: one image, filtered cursor pages, and near-duplicates by perceptual hash."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, Select, and_, func, or_, select

from functions.catalog.schema import images, status
from pipeline.events import is_image_id
from shared import params, safe_json
from shared.sql_values import column_length, integer_range

MAX_PAGE = 200
DEFAULT_PAGE = 50
PHASH_BITS = 64  # the largest Hamming distance between two perceptual hashes
DEFAULT_MAX_DISTANCE = 10
MAX_CURSOR_CHARS = 256  # a cursor this API returns is about 100
STATUSES = ("processing", "ready", "rejected")
# range filters: the parameter and the column it bounds (its values are bounded to what the column holds)
RANGE_FILTERS = {
    "min_bytes": images.c.bytes, "max_bytes": images.c.bytes,
    "min_width": images.c.width, "max_width": images.c.width,
    "min_height": images.c.height, "max_height": images.c.height,
}  # fmt: skip
Cursor = tuple[datetime, str]  # (created_at, id) of the last image of the previous page


def _moment(name: str, raw: str) -> datetime:
    """An ISO 8601 date or date-time as a UTC time (one without an offset is UTC, as stored)."""
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise params.ParameterError(
            name, f"must be an ISO 8601 date or date-time, got {params.shown(raw)}"
        ) from None
    try:
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is in year 0 in UTC
        raise params.ParameterError(name, f"is out of range in UTC: {params.shown(raw)}") from None


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
    def from_args(cls, args: Mapping[str, str], owner: str | None = None) -> ImageFilter:
        values: dict[str, Any] = {"owner": owner}
        status_arg = args.get("status") or None
        if status_arg is not None and status_arg not in STATUSES:
            raise params.ParameterError("status", f"must be one of {', '.join(STATUSES)}")
        values["status"] = status_arg
        image_format = params.optional_text(args, "format", column_length(images.c.format))
        values["format"] = image_format.upper() if image_format else None
        values["camera"] = params.optional_text(args, "camera", column_length(images.c.camera))
        for name, column in RANGE_FILTERS.items():
            bounds = integer_range(column)
            assert bounds is not None
            values[name] = params.optional_integer_or_none(args, name, 0, bounds[1])
        for name in ("taken_after", "taken_before"):
            raw = args.get(name)
            values[name] = _moment(name, raw) if raw else None
        return cls(**values)

    def apply(self, query: Select[Any]) -> Select[Any]:
        c = images.c
        conditions: list[ColumnElement[bool]] = [c.deleted_at.is_(None)]
        exact = {"owner": c.owner, "format": c.format}
        conditions += [column == getattr(self, name) for name, column in exact.items() if getattr(self, name)]
        if self.status:
            conditions.append(status == self.status)
        if self.camera:  # a substring: % and _ in it are plain characters
            conditions.append(c.camera.icontains(self.camera, autoescape=True))
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


def decode_cursor(cursor: str) -> Cursor:
    """The position a cursor this API returned points at; ParameterError (400) for anything else."""
    invalid = params.ParameterError("cursor", "is not one this API returned")
    if len(cursor) > MAX_CURSOR_CHARS:
        raise invalid
    try:  # a str that is not ASCII, base64 or JSON is a ValueError; a JSON value of another shape too
        created, image_id = safe_json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
        moment = datetime.fromisoformat(created)
    except (ValueError, TypeError):
        raise invalid from None
    if not isinstance(image_id, str) or not is_image_id(image_id):
        raise invalid
    return moment, image_id


@dataclass(frozen=True)
class Listing:
    """Every parameter of GET /images, parsed (and refused with a 400) before any query runs."""

    filters: ImageFilter
    limit: int = DEFAULT_PAGE
    cursor: Cursor | None = None
    similar_to: str | None = None  # an image id: list its near-duplicates instead
    max_distance: int = DEFAULT_MAX_DISTANCE

    @classmethod
    def from_args(cls, args: Mapping[str, str], owner: str | None = None) -> Listing:
        limit = params.optional_integer(args, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
        similar_to = args.get("similar_to") or None
        if similar_to is not None and not is_image_id(similar_to):
            raise params.ParameterError("similar_to", f"must be an image id, got {params.shown(similar_to)}")
        max_distance = params.optional_integer(args, "max_distance", DEFAULT_MAX_DISTANCE, 0, PHASH_BITS)
        raw_cursor = args.get("cursor")
        cursor = decode_cursor(raw_cursor) if raw_cursor else None
        return cls(ImageFilter.from_args(args, owner), limit, cursor, similar_to, max_distance)


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
        self, filters: ImageFilter, cursor: Cursor | None, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first; the cursor continues after the last image of the previous page."""
        query = filters.apply(select(images, status))
        if cursor:
            created, image_id = cursor
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
