"""The catalog's own database: one row per image, filled by events arriving in any order."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    case,
)

metadata = MetaData()

images = Table(
    "images",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("bucket", String(255), nullable=False),
    Column("key", Text, nullable=False),
    Column("owner", String(255), nullable=False),
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
