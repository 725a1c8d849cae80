"""The thumbnail handler: variants at deterministic keys, idempotent, rejections as 2xx replies."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from eventing.cloudevent import CloudEvent, new_event
from eventing.http_codec import parse_http
from functions import registry
from functions.thumbnail import main
from pipeline import events
from shared.objectstore import ObjectStore
from shared.objectstore.factory import open_store
from shared.settings import from_env
from tests.support import images as build
from tests.support.functions import deliver
from tests.support.memory_store import MemoryObjectStore

CONFIG = from_env({"DATAFROST_VARIANTS": "thumb:256:webp,preview:1024:webp"})
ROOT = Path(__file__).resolve().parents[3]
KEY = "alice/2024/beach.jpg"
IMAGE_ID = events.image_id("uploads", KEY)


def created(key: str, size: int, event_id: str = "upload-1") -> CloudEvent:
    data = events.ObjectCreated(bucket="uploads", key=key, size=size, etag="etag", content_type="image/jpeg")
    return new_event(
        events.OBJECT_CREATED,
        "/storage-events",
        data,
        id=event_id,
        subject=key,
        extensions={"bucket": "uploads"},
    )


@pytest.fixture
def store() -> MemoryObjectStore:
    objects = MemoryObjectStore()
    objects.ensure_bucket("uploads")
    return objects


def upload(store: ObjectStore, data: bytes, key: str = KEY, event_id: str = "upload-1") -> CloudEvent:
    store.put("uploads", key, data, "image/jpeg")
    return created(key, len(data), event_id=event_id)


def test_variants_are_written_at_deterministic_keys_and_announced(store: MemoryObjectStore) -> None:
    reply = main.thumbnail_event(upload(store, build.jpeg((2000, 1500))), store, CONFIG)
    assert reply is not None
    assert (reply.type, reply.source, reply.id) == (
        events.IMAGE_THUMBNAILED,
        main.SOURCE,
        "upload-1.thumbnailed",
    )
    assert (reply.subject, reply.get("bucket")) == (IMAGE_ID, "uploads")
    thumbnailed = events.payload(events.ImageThumbnailed, reply.json())
    assert (thumbnailed.image_id, thumbnailed.bucket, thumbnailed.key) == (IMAGE_ID, "uploads", KEY)
    assert [(v.name, v.key, v.width, v.height, v.format) for v in thumbnailed.variants] == [
        ("thumb", f"{IMAGE_ID}/thumb.webp", 256, 192, "WEBP"),
        ("preview", f"{IMAGE_ID}/preview.webp", 1024, 768, "WEBP"),
    ]
    for variant in thumbnailed.variants:
        info = store.stat("variants", variant.key)
        assert variant.bucket == "variants" and info is not None
        assert (info.size, info.content_type) == (variant.bytes, "image/webp")
        image = Image.open(io.BytesIO(store.get("variants", variant.key)))
        assert image.size == (variant.width, variant.height) and not image.getexif()


def test_a_redelivery_rewrites_the_same_bytes_and_replies_the_same(store: MemoryObjectStore) -> None:
    event = upload(store, build.jpeg((800, 600)))
    first = main.thumbnail_event(event, store, CONFIG)
    stored = {info.key: store.get("variants", info.key) for info in store.list("variants")}
    second = main.thumbnail_event(event, store, CONFIG)
    assert first is not None and second is not None
    assert (first.id, first.json()) == (second.id, second.json())
    assert {info.key: store.get("variants", info.key) for info in store.list("variants")} == stored
    assert len(stored) == 2


def test_variants_land_in_the_local_object_store(tmp_path: Path) -> None:
    from shared.objectstore.local import LocalObjectStore

    local = LocalObjectStore(tmp_path / "buckets")
    local.ensure_bucket("uploads")
    reply = main.thumbnail_event(upload(local, build.jpeg((100, 50))), local, CONFIG)
    assert reply is not None
    keys = sorted(info.key for info in local.list("variants"))
    assert keys == [f"{IMAGE_ID}/preview.webp", f"{IMAGE_ID}/thumb.webp"]
    assert [(v["width"], v["height"]) for v in reply.json()["variants"]] == [(100, 50), (100, 50)]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (build.text_file(), "not an image"),
        (build.truncated_jpeg(), "truncated or corrupt"),
        (build.gif_frame_bomb(5000), "more than 1000 frames, over the 1000 frame limit"),
    ],
    ids=["text-named-jpg", "truncated", "frame-bomb"],
)
def test_a_bad_image_is_rejected_and_nothing_is_written(
    store: MemoryObjectStore, data: bytes, reason: str
) -> None:
    reply = main.thumbnail_event(upload(store, data), store, CONFIG)
    assert reply is not None and reply.type == events.IMAGE_REJECTED
    assert reply.id == "upload-1.thumbnail.rejected"
    rejected = events.payload(events.ImageRejected, reply.json())
    assert reason in rejected.reason and rejected.stage == "thumbnail"
    assert list(store.list("variants")) == []


def test_a_deleted_object_is_not_an_error(store: MemoryObjectStore) -> None:
    assert main.thumbnail_event(created("gone/x.jpg", 10), store, CONFIG) is None


def test_through_the_runtime_a_rejection_is_a_2xx_cloudevent_reply(tmp_path: Path) -> None:
    local = open_store(
        from_env({"DATAFROST_DATA_DIR": str(tmp_path)})
    )  # the embedded store the function opens
    local.ensure_bucket("uploads")
    response = deliver(main.SPEC, upload(local, b"", event_id="upload-runtime"), tmp_path)
    assert response.status_code == 200
    (reply,) = parse_http(response.headers, response.get_data(), max_bytes=1 << 20)
    assert (reply.type, reply.id) == (events.IMAGE_REJECTED, "upload-runtime.thumbnail.rejected")
    assert reply.json()["reason"] == "the file is empty"


def test_the_spec_triggers_on_uploads_and_is_registered() -> None:
    (trigger,) = main.SPEC.triggers
    assert trigger.resolved_filter(from_env({})) == {"type": events.OBJECT_CREATED, "bucket": "uploads"}
    photos = from_env({"DATAFROST_UPLOADS_BUCKET": "photos"})  # the bucket is a setting
    assert trigger.resolved_filter(photos) == {"type": events.OBJECT_CREATED, "bucket": "photos"}
    assert "thumbnail" in registry.FUNCTIONS


def test_importing_the_function_does_not_load_pillow() -> None:
    code = "import sys, functions.thumbnail.main; sys.exit('PIL' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=False).returncode == 0
