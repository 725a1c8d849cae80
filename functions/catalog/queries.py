"""Catalog reads: one image, filtered cursor pages, and near-duplicates by perceptual hash."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, Select, and_, func, or_, select

from functions.catalog.schema import duplicate_of, images, status
from pipeline.events import is_image_id
from shared import params, safe_json
from shared.errors import HttpError
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
TEXT_FILTERS = ("format", "camera", "filename", "sha256")
FILTERS = ("status", *TEXT_FILTERS, *RANGE_FILTERS, "taken_after", "taken_before")
PARAMETERS = (*FILTERS, "limit", "cursor", "similar_to", "max_distance")  # every one GET /images knows
_SHA256 = re.compile(r"[0-9a-f]{64}")
SIMILAR = "similar"  # the first element of a similar_to cursor
Cursor = tuple[datetime, str]  # (created_at, id) of the last image of the previous page
SimilarCursor = tuple[str, int, str]  # (similar_to, distance, id) of the last image of the previous page


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
    filename: str | None = None
    sha256: str | None = None
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
        values["filename"] = params.optional_text(args, "filename", column_length(images.c.filename))
        digest = args.get("sha256") or None
        if digest is not None and not _SHA256.fullmatch(digest.lower()):
            raise params.ParameterError("sha256", f"must be 64 hex digits, got {params.shown(digest)}")
        values["sha256"] = digest.lower() if digest else None
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
        exact = {"owner": c.owner, "format": c.format, "sha256": c.sha256}
        conditions += [column == getattr(self, name) for name, column in exact.items() if getattr(self, name)]
        if self.status:
            conditions.append(status == self.status)
        if self.camera:  # a substring: % and _ in it are plain characters
            conditions.append(c.camera.icontains(self.camera, autoescape=True))
        if self.filename:  # a substring too, any case
            conditions.append(c.filename.icontains(self.filename, autoescape=True))
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


def _encode(position: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode()


def encode_cursor(created_at: datetime, image_id: str) -> str:
    return _encode([created_at.isoformat(), image_id])


def encode_similar_cursor(origin: str, distance: int, image_id: str) -> str:
    return _encode([SIMILAR, origin, distance, image_id])


def _position(cursor: str) -> list[Any]:
    """The JSON list a cursor encodes; ParameterError (400) for anything else."""
    invalid = params.ParameterError("cursor", "is not one this API returned")
    if len(cursor) > MAX_CURSOR_CHARS:
        raise invalid
    try:  # a str that is not ASCII, base64 or JSON is a ValueError
        position = safe_json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
    except (ValueError, TypeError):
        raise invalid from None
    if not isinstance(position, list):
        raise invalid
    return position


def decode_cursor(cursor: str) -> Cursor:
    """The position a listing cursor this API returned points at; ParameterError (400) for anything else."""
    invalid = params.ParameterError("cursor", "is not one this API returned for a listing")
    position = _position(cursor)
    if len(position) != 2 or not all(isinstance(p, str) for p in position):
        raise invalid
    created, image_id = position
    try:
        moment = datetime.fromisoformat(created)
    except ValueError:
        raise invalid from None
    if not is_image_id(image_id):
        raise invalid
    return moment, image_id


def decode_similar_cursor(cursor: str, origin: str) -> SimilarCursor:
    """The position a similar_to cursor points at, for this origin; ParameterError (400) otherwise."""
    position = _position(cursor)
    valid = (
        len(position) == 4
        and position[0] == SIMILAR
        and position[1] == origin
        and type(position[2]) is int
        and 0 <= position[2] <= PHASH_BITS
        and isinstance(position[3], str)
        and is_image_id(position[3])
    )
    if not valid:
        raise params.ParameterError("cursor", f"is not one this API returned for similar_to={origin}")
    return origin, position[2], position[3]


def check_known(args: Mapping[str, str]) -> None:
    """A 400 naming every parameter GET /images does not know (a typo would silently filter nothing)."""
    unknown = sorted(name for name in args if name not in PARAMETERS)
    if unknown:
        shown = ", ".join(params.shown(name)[1:-1] for name in unknown)
        raise HttpError(f"unknown query parameter(s): {shown}; known: {', '.join(PARAMETERS)}")


@dataclass(frozen=True)
class Listing:
    """Every parameter of GET /images, parsed (and refused with a 400) before any query runs."""

    filters: ImageFilter
    limit: int = DEFAULT_PAGE
    cursor: Cursor | None = None
    similar_to: str | None = None  # an image id: list its near-duplicates (with the filters) instead
    max_distance: int = DEFAULT_MAX_DISTANCE
    similar_cursor: SimilarCursor | None = None

    @classmethod
    def from_args(cls, args: Mapping[str, str], owner: str | None = None) -> Listing:
        check_known(args)
        limit = params.optional_integer(args, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
        similar_to = args.get("similar_to") or None
        if similar_to is not None and not is_image_id(similar_to):
            raise params.ParameterError("similar_to", f"must be an image id, got {params.shown(similar_to)}")
        max_distance = params.optional_integer(args, "max_distance", DEFAULT_MAX_DISTANCE, 0, PHASH_BITS)
        raw_cursor = args.get("cursor")
        cursor = similar_cursor = None
        if raw_cursor and similar_to is not None:
            similar_cursor = decode_similar_cursor(raw_cursor, similar_to)
        elif raw_cursor:
            cursor = decode_cursor(raw_cursor)
        filters = ImageFilter.from_args(args, owner)
        return cls(filters, limit, cursor, similar_to, max_distance, similar_cursor)


def _record(row: Any) -> dict[str, Any]:
    m = row._mapping
    variants = [
        {k: v[k] for k in ("name", "width", "height", "format", "bytes")} for v in (m["variants"] or [])
    ]
    return {
        "id": m["id"], "bucket": m["bucket"], "key": m["key"], "owner": m["owner"],
        "filename": m["filename"], "duplicate_of": m["duplicate_of"],
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
        query = select(images, status, duplicate_of).where(
            images.c.id == image_id, images.c.deleted_at.is_(None)
        )
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
        query = filters.apply(select(images, status, duplicate_of))
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
        self,
        image_id: str,
        max_distance: int,
        limit: int,
        filters: ImageFilter,
        cursor: SimilarCursor | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Images that pass `filters` and whose perceptual hash is within `max_distance` bits of this
        one's, nearest first (then by id); the cursor continues after the previous page's last."""
        origin = self.get(image_id, filters.owner)
        if origin is None or not origin["phash"]:
            return [], None
        target = int(origin["phash"], 16)
        candidates = filters.apply(select(images.c.id, images.c.phash)).where(
            images.c.phash.is_not(None), images.c.id != image_id
        )
        with self.engine.connect() as conn:
            scored = sorted(
                (d, r.id)
                for r in conn.execute(candidates)
                if (d := (int(r.phash, 16) ^ target).bit_count()) <= max_distance
            )
        if cursor is not None:
            after = cursor[1:]
            scored = [s for s in scored if s > after]
        page = scored[: limit + 1]
        more = len(page) > limit
        page = page[:limit]
        rows = self._records([i for _, i in page])
        found = [{**rows[i], "distance": d} for d, i in page if i in rows]
        last = page[-1] if page else None
        next_cursor = encode_similar_cursor(image_id, *last) if more and last else None
        return found, next_cursor

    def _records(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """The live records of these ids, by id."""
        if not ids:
            return {}
        query = select(images, status, duplicate_of).where(
            images.c.id.in_(ids), images.c.deleted_at.is_(None)
        )
        with self.engine.connect() as conn:
            return {r.id: _record(r) for r in conn.execute(query)}
