"""The inspect handler: analyzed or rejected replies with deterministic ids, 2xx for a bad image."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from eventing.cloudevent import CloudEvent, new_event
from eventing.http_codec import parse_http
from functions import registry
from functions.inspect import main
from pipeline import events
from shared.errors import PermanentEventError
from shared.objectstore import ObjectStore
from shared.objectstore.factory import open_store
from shared.settings import from_env
from tests.support import images as build
from tests.support.functions import deliver
from tests.support.memory_store import MemoryObjectStore

CONFIG = from_env({"DATAFROST_MAX_UPLOAD_BYTES": "100000"})
ROOT = Path(__file__).resolve().parents[3]


def created(key: str, size: int, bucket: str = "uploads", event_id: str = "upload-1") -> CloudEvent:
    data = events.ObjectCreated(bucket=bucket, key=key, size=size, etag="etag", content_type="image/jpeg")
    return new_event(
        events.OBJECT_CREATED,
        "/storage-events",
        data,
        id=event_id,
        subject=key,
        extensions={"bucket": bucket},
    )


@pytest.fixture
def store() -> MemoryObjectStore:
    objects = MemoryObjectStore()
    objects.ensure_bucket("uploads")
    return objects


def upload(store: ObjectStore, key: str, data: bytes, event_id: str = "upload-1") -> CloudEvent:
    store.put("uploads", key, data, "image/jpeg")
    return created(key, len(data), event_id=event_id)


def test_an_image_is_answered_with_image_analyzed(store: MemoryObjectStore) -> None:
    event = upload(store, "alice/2024/cat.jpg", build.jpeg((320, 240), exif=build.camera_exif(6)))
    reply = main.inspect_event(event, store, CONFIG)
    assert reply is not None
    image_id = events.image_id("uploads", "alice/2024/cat.jpg")
    assert (reply.type, reply.source, reply.id) == (events.IMAGE_ANALYZED, main.SOURCE, "upload-1.analyzed")
    assert (reply.subject, reply.get("bucket")) == (image_id, "uploads")
    analyzed = events.payload(events.ImageAnalyzed, reply.json())
    assert (analyzed.image_id, analyzed.bucket, analyzed.key) == (image_id, "uploads", "alice/2024/cat.jpg")
    assert (analyzed.width, analyzed.height, analyzed.format, analyzed.owner) == (240, 320, "JPEG", "alice")
    assert analyzed.exif["gps_latitude"] == pytest.approx(-33.8599) and len(analyzed.phash) == 16


def test_a_redelivery_gets_the_same_reply_id(store: MemoryObjectStore) -> None:
    event = upload(store, "bob/a.png", build.encode(build.scene(), "PNG"))
    first, second = main.inspect_event(event, store, CONFIG), main.inspect_event(event, store, CONFIG)
    assert first is not None and second is not None
    assert (first.id, first.json()) == (second.id, second.json())


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (build.text_file(), "not an image: the content is not JPEG, PNG, WebP"),
        (b"", "the file is empty"),
        (build.truncated_jpeg(), "the image data is truncated or corrupt"),
        (build.png_header_bomb(), "image is 50000x50000 = 2500 megapixels, over the 80 megapixel limit"),
    ],
    ids=["text-named-jpg", "empty", "truncated", "pixel-bomb"],
)
def test_a_bad_image_is_answered_with_image_rejected(
    store: MemoryObjectStore, data: bytes, reason: str
) -> None:
    reply = main.inspect_event(upload(store, "carol/holiday.jpg", data), store, CONFIG)
    assert reply is not None and reply.type == events.IMAGE_REJECTED
    assert reply.id == "upload-1.inspect.rejected" and reply.get("bucket") == "uploads"
    rejected = events.payload(events.ImageRejected, reply.json())
    assert reason in rejected.reason and rejected.stage == "inspect" and rejected.key == "carol/holiday.jpg"


def test_an_object_over_the_limit_is_rejected_without_reading_it(store: MemoryObjectStore) -> None:
    reply = main.inspect_event(created("dave/huge.jpg", 200_000), store, CONFIG)
    assert reply is not None and "over the 0.095 MB limit" in reply.json()["reason"]
    assert store.gets == 0


def test_a_deleted_object_is_not_an_error(store: MemoryObjectStore) -> None:
    assert main.inspect_event(created("erin/gone.jpg", 10), store, CONFIG) is None


def test_objects_that_are_not_uploads_are_ignored(store: MemoryObjectStore) -> None:
    assert main.inspect_event(created("x/thumb.webp", 10, bucket="variants"), store, CONFIG) is None
    assert main.inspect_event(created("folder/", 0), store, CONFIG) is None
    assert store.gets == 0


def test_a_malformed_payload_is_a_permanent_error(store: MemoryObjectStore) -> None:
    event = new_event(events.OBJECT_CREATED, "/s", {"bucket": "uploads"}, extensions={"bucket": "uploads"})
    with pytest.raises(PermanentEventError, match="missing key"):
        main.inspect_event(event, store, CONFIG)
    bad_key = {"bucket": "uploads", "key": 5, "size": 1, "etag": "", "content_type": ""}
    event = new_event(events.OBJECT_CREATED, "/s", bad_key)
    with pytest.raises(PermanentEventError, match=r"ObjectCreated\.key must be str"):
        main.inspect_event(event, store, CONFIG)


def test_through_the_runtime_a_rejection_is_a_2xx_cloudevent_reply(tmp_path: Path) -> None:
    local = open_store(
        from_env({"DATAFROST_DATA_DIR": str(tmp_path)})
    )  # the embedded store the function opens
    local.ensure_bucket("uploads")
    response = deliver(
        main.SPEC, upload(local, "frank/notes.jpg", build.text_file(), "upload-runtime"), tmp_path
    )
    assert response.status_code == 200
    (reply,) = parse_http(response.headers, response.get_data(), max_bytes=1 << 20)
    assert (reply.type, reply.id) == (events.IMAGE_REJECTED, "upload-runtime.inspect.rejected")


def test_the_spec_triggers_on_uploads_and_is_registered() -> None:
    (trigger,) = main.SPEC.triggers
    assert trigger.resolved_filter(from_env({})) == {"type": events.OBJECT_CREATED, "bucket": "uploads"}
    photos = from_env({"DATAFROST_UPLOADS_BUCKET": "photos"})  # the bucket is a setting
    assert trigger.resolved_filter(photos) == {"type": events.OBJECT_CREATED, "bucket": "photos"}
    assert "inspect" in registry.FUNCTIONS


def test_importing_the_function_does_not_load_pillow() -> None:
    code = "import sys, functions.inspect.main; sys.exit('PIL' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=False).returncode == 0
