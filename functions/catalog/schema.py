"""The catalog's own database: one row per image, filled by events arriving in any order."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    case,
    inspect,
    or_,
    select,
    text,
)

metadata = MetaData()

images = Table(
    "images",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("bucket", String(255), nullable=False),
    Column("key", Text, nullable=False),
    Column("owner", String(255), nullable=False),
    Column("filename", String(1024), nullable=True),  # the uploader's file name (object metadata)
    Column("reason", Text, nullable=True),  # set when rejected
    Column("width", Integer, nullable=True),
    Column("height", Integer, nullable=True),
    Column("format", String(16), nullable=True),
    Column("mode", String(16), nullable=True),
    Column("bytes", BigInteger, nullable=True),
    Column("sha256", String(64), nullable=True),
    Column("phash", String(16), nullable=True),
    Column("dominant_color", String(7), nullable=True),
    Column("frames", Integer, nullable=True),
    Column("exif", JSON, nullable=True),
    Column("camera", String(255), nullable=True),  # "make model", for the camera filter
    Column("taken_at", DateTime(timezone=True), nullable=True),
    Column("variants", JSON, nullable=True),
    Column("content_type", String(255), nullable=True),
    Column("sequencer", String(64), nullable=True),  # of the object.created that made this version
    Column("removed_sequencer", String(64), nullable=True),
    Column("analyzed_at", DateTime(timezone=True), nullable=True),
    Column("thumbnailed_at", DateTime(timezone=True), nullable=True),
    Column("deleted_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
Index("ix_images_listing", images.c.created_at, images.c.id)
Index("ix_images_owner", images.c.owner)
Index("ix_images_sha256", images.c.sha256)

# Status is derived, never stored: each event type writes its own columns, so the order in which
# analyzed, thumbnailed and rejected events arrive does not matter.
status = case(
    (images.c.reason.is_not(None), "rejected"),
    ((images.c.analyzed_at.is_not(None)) & (images.c.thumbnailed_at.is_not(None)), "ready"),
    else_="processing",
).label("status")

# The reconciler's own state (functions/catalog/reconcile.py): how often each record was repaired
# (the generation in its repair event ids), and what the last pass of each bucket did.
repairs = Table(
    "reconcile_repairs",
    metadata,
    Column("id", String(32), primary_key=True),  # the image id
    Column("generation", Integer, nullable=False),
    Column("repaired_at", DateTime(timezone=True), nullable=False),
)
passes = Table(
    "reconcile_passes",
    metadata,
    Column("bucket", String(255), primary_key=True),
    Column("finished_at", DateTime(timezone=True), nullable=False),
    Column("summary", JSON, nullable=False),
)

# The earliest live record of the same owner with the same bytes (sha256): derived when read, so it
# holds whatever order the events came in and follows deletions.
_earlier = images.alias("earlier")
duplicate_of = (
    select(_earlier.c.id)
    .where(
        _earlier.c.sha256 == images.c.sha256,
        _earlier.c.owner == images.c.owner,
        _earlier.c.deleted_at.is_(None),
        or_(
            _earlier.c.created_at < images.c.created_at,
            and_(_earlier.c.created_at == images.c.created_at, _earlier.c.id < images.c.id),
        ),
    )
    .order_by(_earlier.c.created_at, _earlier.c.id)
    .limit(1)
    .correlate(images)
    .scalar_subquery()
    .label("duplicate_of")
)


def create_or_upgrade(engine: Engine) -> None:
    """Create the tables, and add the (nullable) columns a database made by an older version lacks."""
    metadata.create_all(engine)
    present = {column["name"] for column in inspect(engine).get_columns(images.name)}
    missing = [column for column in images.columns if column.name not in present]
    guard = "IF NOT EXISTS " if engine.dialect.name == "postgresql" else ""  # replicas starting at once
    with engine.begin() as conn:
        for column in missing:
            kind = column.type.compile(dialect=engine.dialect)
            conn.execute(text(f'ALTER TABLE {images.name} ADD COLUMN {guard}"{column.name}" {kind}'))
