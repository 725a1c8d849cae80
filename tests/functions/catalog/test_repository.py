"""The catalog's writes and reads, on SQLite and on PostgreSQL: any event order, filters, pages."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from functions.catalog.queries import CatalogReader, ImageFilter, decode_cursor
from functions.catalog.repository import CatalogWriter, sequencer_after
from pipeline.events import (
    ImageAnalyzed,
    ImageRejected,
    ImageThumbnailed,
    ObjectCreated,
    ObjectRemoved,
    Variant,
    image_id,
)
from shared.db import engine
from shared.errors import HttpError

BUCKET = "uploads"


@pytest.fixture
def catalog(database_url: str) -> Iterator[tuple[CatalogWriter, CatalogReader]]:
    db = engine(database_url)
    writer = CatalogWriter(db)
    yield writer, CatalogReader(db)
    db.dispose()


def created(key: str, sequencer: str = "1000") -> ObjectCreated:
    return ObjectCreated(BUCKET, key, 1234, "etag", "image/jpeg", sequencer=sequencer)


def analyzed(key: str, **changes: object) -> ImageAnalyzed:
    values: dict[str, object] = {
        "image_id": image_id(BUCKET, key), "bucket": BUCKET, "key": key, "width": 640, "height": 480,
        "format": "JPEG", "mode": "RGB", "bytes": 1234, "sha256": "ab" * 32, "phash": "0f0f0f0f0f0f0f0f",
        "exif": {"make": "Canon", "model": "EOS R5", "date_taken": "2024-05-01T10:00:00"},
    }  # fmt: skip
    values.update(changes)
    return ImageAnalyzed(**values)  # type: ignore[arg-type]


def thumbnailed(key: str) -> ImageThumbnailed:
    variant = Variant("thumb", "variants", f"{image_id(BUCKET, key)}/thumb.webp", 256, 192, "WEBP", 999)
    return ImageThumbnailed(image_id(BUCKET, key), BUCKET, key, [variant])


def test_every_order_of_created_analyzed_thumbnailed_ends_ready(
    catalog: tuple[CatalogWriter, CatalogReader],
) -> None:
    writer, reader = catalog
    steps: list[Callable[[str], None]] = [
        lambda key: writer.object_created(image_id(BUCKET, key), created(key)),
        lambda key: writer.analyzed(analyzed(key)),
        lambda key: writer.thumbnailed(thumbnailed(key)),
    ]
    for n, order in enumerate(itertools.permutations(steps)):
        key = f"alice/order-{n}.jpg"
        for step in order:
            step(key)
            step(key)  # every event delivered twice
        record = reader.get(image_id(BUCKET, key))
        assert record is not None
        assert record["status"] == "ready", n
        assert (record["width"], record["height"], record["owner"]) == (640, 480, "alice")
        assert record["variants"] == [
            {"name": "thumb", "width": 256, "height": 192, "format": "WEBP", "bytes": 999}
        ]
        assert record["camera"] == "Canon EOS R5"
    total, _ = reader.page(ImageFilter(), None, 100)
    assert len(total) == 6


def test_rejected_wins_over_analysis(catalog: tuple[CatalogWriter, CatalogReader]) -> None:
    writer, reader = catalog
    key = "bob/bad.jpg"
    writer.object_created(image_id(BUCKET, key), created(key))
    writer.rejected(ImageRejected(image_id(BUCKET, key), BUCKET, key, "the file is empty"))
    record = reader.get(image_id(BUCKET, key))
    assert record is not None and record["status"] == "rejected" and record["reason"] == "the file is empty"


def test_removed_image_is_gone_and_late_events_do_not_revive_it(
    catalog: tuple[CatalogWriter, CatalogReader],
) -> None:
    writer, reader = catalog
    key = "carol/x.jpg"
    the_id = image_id(BUCKET, key)
    writer.object_created(the_id, created(key, "1000"))
    writer.removed(the_id, ObjectRemoved(BUCKET, key, sequencer="2000"))
    writer.analyzed(analyzed(key))
    writer.object_created(the_id, created(key, "1000"))  # redelivered create of the removed version
    assert reader.get(the_id) is None
    writer.object_created(the_id, created(key, "3000"))  # uploaded again afterwards
    writer.analyzed(analyzed(key, width=10, height=20))
    record = reader.get(the_id)
    assert record is not None and record["status"] == "processing" and record["width"] == 10


def test_removal_of_an_older_version_keeps_the_newer(catalog: tuple[CatalogWriter, CatalogReader]) -> None:
    writer, reader = catalog
    key = "dave/y.jpg"
    writer.object_created(image_id(BUCKET, key), created(key, "5000"))
    writer.removed(image_id(BUCKET, key), ObjectRemoved(BUCKET, key, sequencer="4000"))
    assert reader.get(image_id(BUCKET, key)) is not None


def test_filters(catalog: tuple[CatalogWriter, CatalogReader]) -> None:
    writer, reader = catalog
    writer.analyzed(analyzed("u/a.jpg"))
    writer.analyzed(analyzed("u/b.png", format="PNG", bytes=10, width=100, height=50, exif={"make": "Nikon"}))
    writer.analyzed(analyzed("u/c.jpg", exif={"date_taken": "2020-01-01T00:00:00"}))
    writer.thumbnailed(thumbnailed("u/a.jpg"))

    def keys(**args: str) -> set[str]:
        page, _ = reader.page(ImageFilter.from_args(args), None, 50)
        return {r["key"] for r in page}

    assert keys(format="png") == {"u/b.png"}
    assert keys(max_bytes="100") == {"u/b.png"}
    assert keys(min_bytes="100") == {"u/a.jpg", "u/c.jpg"}
    assert keys(min_width="200", max_height="500") == {"u/a.jpg", "u/c.jpg"}
    assert keys(camera="canon") == {"u/a.jpg"}
    assert keys(taken_after="2024-01-01", taken_before="2024-12-31") == {"u/a.jpg"}
    assert keys(status="ready") == {"u/a.jpg"}
    assert keys(status="processing") == {"u/b.png", "u/c.jpg"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"status": "done"}, "status must be one of"),
        ({"min_bytes": "-1"}, "min_bytes"),
        ({"taken_after": "x"}, "ISO"),
    ],
)
def test_bad_filters_name_the_problem(args: dict[str, str], message: str) -> None:
    with pytest.raises(HttpError, match=message):
        ImageFilter.from_args(args)


def test_cursor_pages_cover_everything_once(catalog: tuple[CatalogWriter, CatalogReader]) -> None:
    writer, reader = catalog
    for n in range(23):
        writer.analyzed(analyzed(f"p/{n:02d}.jpg"))
    seen: list[str] = []
    cursor = None
    while True:
        page, cursor = reader.page(ImageFilter(), decode_cursor(cursor) if cursor else None, 5)
        seen += [r["id"] for r in page]
        if cursor is None:
            break
        decode_cursor(cursor)
    assert len(seen) == 23 and len(set(seen)) == 23


def test_similar_to_orders_by_hamming_distance(catalog: tuple[CatalogWriter, CatalogReader]) -> None:
    writer, reader = catalog
    writer.analyzed(analyzed("s/origin.jpg", phash="ffffffff00000000"))
    writer.analyzed(analyzed("s/near.jpg", phash="ffffffff00000001"))  # 1 bit away
    writer.analyzed(analyzed("s/closer.jpg", phash="ffffffff00000000"))  # identical hash
    writer.analyzed(analyzed("s/far.jpg", phash="00000000ffffffff"))  # 64 bits away
    found, next_cursor = reader.similar(image_id(BUCKET, "s/origin.jpg"), 10, 10, ImageFilter())
    assert [(r["key"], r["distance"]) for r in found] == [("s/closer.jpg", 0), ("s/near.jpg", 1)]
    assert next_cursor is None


def test_owner_scoping(catalog: tuple[CatalogWriter, CatalogReader]) -> None:
    writer, reader = catalog
    writer.analyzed(analyzed("alice/1.jpg"))
    writer.analyzed(analyzed("bob/1.jpg"))
    assert reader.get(image_id(BUCKET, "bob/1.jpg"), owner="alice") is None
    page, _ = reader.page(ImageFilter(owner="alice"), None, 10)
    assert [r["owner"] for r in page] == ["alice"]


@pytest.mark.parametrize(
    ("new", "old", "after"),
    [
        ("17A", "179", True),
        ("179", "17A", False),
        ("1000", None, True),
        (None, "1", False),
        ("10", "F", True),
    ],
)
def test_sequencer_order(new: str | None, old: str | None, after: bool) -> None:
    assert sequencer_after(new, old) is after


def test_concurrent_events_for_new_images_are_all_applied(
    catalog: tuple[CatalogWriter, CatalogReader],
) -> None:
    """Analyzed, thumbnailed and created race for the same new rows (PostgreSQL: READ COMMITTED)."""
    writer, reader = catalog
    keys = [f"race/{n}.jpg" for n in range(40)]
    jobs: list[Callable[[], None]] = []
    for key in keys:
        jobs += [
            lambda key=key: writer.object_created(image_id(BUCKET, key), created(key)),  # type: ignore[misc]
            lambda key=key: writer.analyzed(analyzed(key)),  # type: ignore[misc]
            lambda key=key: writer.thumbnailed(thumbnailed(key)),  # type: ignore[misc]
        ]
    with ThreadPoolExecutor(12) as pool:
        for future in [pool.submit(job) for job in jobs]:
            future.result()
    statuses = {key: (reader.get(image_id(BUCKET, key)) or {}).get("status") for key in keys}
    assert set(statuses.values()) == {"ready"}, statuses
