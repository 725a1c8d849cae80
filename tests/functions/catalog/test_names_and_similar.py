"""The catalog keeps file names and links duplicates; similar_to combines with every filter and pages;
an older database gains the new columns. On SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Column, MetaData, String, Table, inspect

from functions.catalog.queries import (
    CatalogReader,
    ImageFilter,
    Listing,
    decode_similar_cursor,
    encode_cursor,
    encode_similar_cursor,
)
from functions.catalog.repository import CatalogWriter
from pipeline import filenames
from pipeline.events import ImageAnalyzed, ObjectCreated, image_id
from shared.db import engine
from shared.errors import HttpError

BUCKET = "uploads"


@pytest.fixture
def catalog(database_url: str) -> Iterator[tuple[CatalogWriter, CatalogReader]]:
    db = engine(database_url)
    writer = CatalogWriter(db)
    yield writer, CatalogReader(db)
    db.dispose()


def create(writer: CatalogWriter, key: str, name: str | None, sequencer: str = "1000") -> str:
    metadata = filenames.to_metadata(name) if name is not None else {}
    created = ObjectCreated(BUCKET, key, 10, "etag", "image/jpeg", metadata, sequencer=sequencer)
    writer.object_created(image_id(BUCKET, key), created)
    return image_id(BUCKET, key)


def analyze(
    writer: CatalogWriter, key: str, sha256: str = "ab" * 32, phash: str = "0" * 16, **more: object
) -> str:
    values: dict[str, object] = {
        "image_id": image_id(BUCKET, key), "bucket": BUCKET, "key": key, "width": 640, "height": 480,
        "format": "JPEG", "mode": "RGB", "bytes": 1234, "sha256": sha256, "phash": phash,
    }  # fmt: skip
    writer.analyzed(ImageAnalyzed(**{**values, **more}))  # type: ignore[arg-type]
    return image_id(BUCKET, key)


NAMES = ["Été à Paris 写真.jpg", "my holiday photo.png", 'say "cheese".jpg', "100%_done.jpg", " spaced .jpg"]


@pytest.mark.parametrize("name", NAMES)
def test_the_uploaders_file_name_is_kept_and_searchable(
    catalog: tuple[CatalogWriter, CatalogReader], name: str
) -> None:
    writer, reader = catalog
    the_id = create(writer, "alice/0123.jpg", name)
    record = reader.get(the_id)
    assert record is not None and record["filename"] == name
    middle = name.strip()[1:-2]
    page, _ = reader.page(ImageFilter(filename=middle), None, 10)
    assert [r["id"] for r in page] == [the_id]
    page, _ = reader.page(ImageFilter(filename=name + "x"), None, 10)
    assert page == []


def test_without_a_name_the_keys_last_segment_is_the_filename(
    catalog: tuple[CatalogWriter, CatalogReader],
) -> None:
    writer, reader = catalog
    the_id = create(writer, "alice/dropped in/IMG 1.jpg", None)
    legacy = ObjectCreated(BUCKET, "alice/x.jpg", 10, "e", "image/jpeg", {"original-name": "old_name.jpg"})
    writer.object_created(image_id(BUCKET, "alice/x.jpg"), legacy)
    assert (reader.get(the_id) or {})["filename"] == "IMG 1.jpg"
    assert (reader.get(image_id(BUCKET, "alice/x.jpg")) or {})["filename"] == "old_name.jpg"


def test_duplicate_of_names_the_owners_earliest_record_with_the_same_bytes(
    catalog: tuple[CatalogWriter, CatalogReader],
) -> None:
    writer, reader = catalog
    first = create(writer, "alice/1.jpg", "a.jpg")
    second = create(writer, "alice/2.jpg", "a copy.jpg")
    third = create(writer, "alice/3.jpg", "another copy.jpg")
    bobs = create(writer, "bob/1.jpg", "a.jpg")
    other = create(writer, "alice/4.jpg", "other.jpg")
    for key in ("alice/3.jpg", "alice/2.jpg", "bob/1.jpg", "alice/1.jpg"):  # analyzed in any order
        analyze(writer, key, sha256="cd" * 32)
    analyze(writer, "alice/4.jpg", sha256="ef" * 32)

    def link(the_id: str) -> str | None:
        record = reader.get(the_id)
        assert record is not None
        return record["duplicate_of"]  # type: ignore[no-any-return]

    assert [link(i) for i in (first, second, third, bobs, other)] == [None, first, first, None, None]
    page, _ = reader.page(ImageFilter(owner="alice", sha256="cd" * 32), None, 10)
    assert sorted(r["id"] for r in page) == sorted([first, second, third])
    with writer.engine.begin() as conn:  # the original is deleted: the next copy is the earliest
        writer.mark_deleted(conn, first, None)
    assert [link(second), link(third)] == [None, second]


def test_similar_to_combines_with_the_filters_and_pages_by_cursor(
    catalog: tuple[CatalogWriter, CatalogReader],
) -> None:
    writer, reader = catalog
    origin = analyze(writer, "alice/origin.jpg", phash="ffff000000000000")
    expected = []
    for n in range(12):  # distances 0..5, two images each; the even ones are PNGs
        phash = f"{(0xFFFF << 48) | ((1 << (n // 2)) - 1):016x}"
        fmt = "PNG" if n % 2 == 0 else "JPEG"
        the_id = analyze(writer, f"alice/{n:02d}.jpg", phash=phash, format=fmt, width=100 + n)
        if fmt == "PNG" and n // 2 <= 4:
            expected.append((n // 2, the_id))
    analyze(writer, "alice/far.png", phash="0000ffffffffffff", format="PNG")  # 48 bits away
    analyze(writer, "bob/near.png", phash="ffff000000000000", format="PNG")  # another owner's
    expected.sort()
    filters = ImageFilter(owner="alice", format="PNG")
    seen: list[tuple[int, str]] = []
    cursor = None
    while True:
        page, next_cursor = reader.similar(origin, 4, 2, filters, cursor)
        assert len(page) <= 2
        seen += [(r["distance"], r["id"]) for r in page]
        if next_cursor is None:
            break
        cursor = decode_similar_cursor(next_cursor, origin)
    assert seen == expected and len(seen) == 5
    wide, _ = reader.similar(origin, 4, 50, ImageFilter(owner="alice", min_width=108))
    assert {r["width"] for r in wide} == {108, 109}  # 110 and 111 are 5 bits away


def test_a_similar_to_cursor_belongs_to_its_origin_and_kind() -> None:
    origin, other = "a" * 32, "b" * 32
    listing_cursor = encode_cursor(datetime(2024, 1, 1), "c" * 32)
    with pytest.raises(HttpError) as refused:
        Listing.from_args({"similar_to": origin, "cursor": listing_cursor})
    assert refused.value.status == 400 and str(refused.value).startswith("cursor is not one")
    with pytest.raises(HttpError):
        Listing.from_args({"similar_to": other, "cursor": encode_similar_cursor(origin, 3, "c" * 32)})
    with pytest.raises(HttpError):  # a similar_to cursor is no listing cursor
        Listing.from_args({"cursor": encode_similar_cursor(origin, 3, "c" * 32)})
    parsed = Listing.from_args({"similar_to": origin, "cursor": encode_similar_cursor(origin, 3, "c" * 32)})
    assert parsed.similar_cursor == (origin, 3, "c" * 32)


def test_unknown_parameters_are_a_400_naming_them() -> None:
    with pytest.raises(HttpError) as refused:
        Listing.from_args({"status": "ready", "foo": "1", "statuss": "x"})
    message = str(refused.value)
    assert refused.value.status == 400
    assert message.startswith("unknown query parameter(s): foo, statuss; known: status, format")


def test_an_older_database_gains_the_new_columns(database_url: str, tmp_path: Path) -> None:
    db = engine(database_url)
    try:
        old = MetaData()
        Table("images", old, Column("id", String(32), primary_key=True))  # a table of an older version
        old.create_all(db)
        CatalogWriter(db)
        columns = {c["name"] for c in inspect(db).get_columns("images")}
        assert {"filename", "owner", "sha256", "deleted_at"} <= columns
    finally:
        db.dispose()
