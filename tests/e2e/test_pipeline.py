"""The image pipeline end to end through `datafrost dev`: upload or bucket drop, to a catalog entry
with variants, to deletion; on the embedded parts and on S3 + RabbitMQ + PostgreSQL."""

from __future__ import annotations

import io
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from pipeline.events import image_id
from pipeline.minio_codec import ObjectRef, notification_for
from shared.objectstore.s3 import S3ObjectStore
from tests.support import images
from tests.support.brokers import delete_platform_broker
from tests.support.platform import DevProcess, storage_events_headers

STORED = (1200, 800)  # the JPEG's pixels as stored; EXIF orientation 6 shows them as 800 x 1200


def camera_jpeg() -> bytes:
    return images.jpeg(STORED, exif=images.camera_exif(orientation=6))


def wait_done(dev: DevProcess, the_id: str, timeout: float = 60.0) -> dict[str, Any]:
    """The catalog record once it left `processing`."""
    deadline = time.monotonic() + timeout
    record: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status, body = dev.json("GET", f"/catalog/images/{the_id}")
        if status == 200:
            record = body
            if record["status"] != "processing":
                return record
        time.sleep(0.1)
    problems = [line for line in dev.logs() if line.get("level") in ("warning", "error")]
    raise AssertionError(
        f"image {the_id} still not processed: {record or 'no record'}; log: {problems[-10:]}"
    )


def assert_ready_and_rotated(dev: DevProcess, record: dict[str, Any]) -> None:
    assert record["status"] == "ready", record
    assert (record["width"], record["height"]) == (800, 1200)
    assert record["format"] == "JPEG" and record["exif"]["make"] == "Canon"
    assert record["exif"]["model"] == "Canon EOS R5" and record["exif"]["orientation"] == 6
    assert record["exif"]["gps_latitude"] == pytest.approx(-33.85990, abs=1e-4)
    assert record["exif"]["gps_longitude"] == pytest.approx(151.20111, abs=1e-4)
    sizes = {v["name"]: (v["width"], v["height"]) for v in record["variants"]}
    assert sizes == {"thumb": (171, 256), "preview": (683, 1024)}
    for name, size in sizes.items():
        response = dev.request("GET", f"/catalog/images/{record['id']}/variants/{name}")
        assert response.status == 200 and response.headers["Content-Type"] == "image/webp"
        variant = Image.open(io.BytesIO(response.data))
        variant.load()
        assert variant.format == "WEBP" and variant.size == size
        assert not variant.getexif()


@pytest.fixture
def dev(tmp_path: Path) -> Any:
    platform = DevProcess(
        tmp_path / "data", "--keep-warm", env={"DATAFROST_MAX_UPLOAD_BYTES": "300000"}
    ).start()
    yield platform
    platform.stop()


def test_upload_and_bucket_drop_both_reach_ready_and_delete_cleans_up(dev: DevProcess) -> None:
    data = camera_jpeg()
    response = dev.request("POST", "/upload", body=data, headers={"Content-Type": "application/octet-stream"})
    assert response.status == 201
    uploaded = json.loads(response.data)
    assert uploaded["bucket"] == "uploads" and uploaded["id"] == image_id("uploads", uploaded["key"])

    bucket_dir = dev.data_dir / "buckets" / "uploads"
    (bucket_dir / "alice").mkdir(parents=True, exist_ok=True)
    (bucket_dir / "alice" / "dropped in.jpg").write_bytes(data)  # as a user copies a file in
    dropped_id = image_id("uploads", "alice/dropped in.jpg")

    for the_id in (uploaded["id"], dropped_id):
        assert_ready_and_rotated(dev, wait_done(dev, the_id))
    dropped = wait_done(dev, dropped_id)
    assert dropped["owner"] == "alice" and dropped["sha256"] == wait_done(dev, uploaded["id"])["sha256"]

    variants_dir = dev.data_dir / "buckets" / "variants" / dropped_id
    assert sorted(p.name for p in variants_dir.iterdir()) == ["preview.webp", "thumb.webp"]
    assert dev.request("DELETE", f"/catalog/images/{dropped_id}").status == 204
    assert dev.request("GET", f"/catalog/images/{dropped_id}").status == 404
    assert not (bucket_dir / "alice" / "dropped in.jpg").exists()
    assert not variants_dir.exists() or not any(variants_dir.iterdir())
    _, listing = dev.json("GET", "/catalog/images")
    assert [r["id"] for r in listing["images"]] == [uploaded["id"]]


def test_multipart_upload(dev: DevProcess) -> None:
    boundary = "datafrost-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="cam.jpg"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + camera_jpeg()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    response = dev.request("POST", "/upload", body=body, headers=headers)
    assert response.status == 201, response.data
    assert_ready_and_rotated(dev, wait_done(dev, json.loads(response.data)["id"]))


BAD_IMAGES = {
    "empty.jpg": (b"", "empty"),
    "notes.jpg": (images.text_file(), "not an image"),
    "cut.jpg": (images.truncated_jpeg(), "truncated"),
    "huge.png": (images.png_header_bomb(50_000, 50_000), "megapixel"),
    "frames.gif": (images.gif_frame_bomb(5000), "frame"),
}


def test_bad_images_end_rejected_with_a_reason_and_the_system_stays_healthy(dev: DevProcess) -> None:
    bucket_dir = dev.data_dir / "buckets" / "uploads" / "mallory"
    bucket_dir.mkdir(parents=True, exist_ok=True)
    for name, (data, _) in BAD_IMAGES.items():
        (bucket_dir / name).write_bytes(data)
    for name, (_, reason) in BAD_IMAGES.items():
        record = wait_done(dev, image_id("uploads", f"mallory/{name}"))
        assert record["status"] == "rejected", name
        assert reason in record["reason"].lower(), (name, record["reason"])
    assert dev.request("GET", "/healthz").status == 200
    good = dev.request("POST", "/upload", body=camera_jpeg(), headers={"Content-Type": "image/jpeg"})
    assert_ready_and_rotated(dev, wait_done(dev, json.loads(good.data)["id"]))


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"", 400, "empty"),
        (b"just some text, named photo.jpg", 415, "unsupported media type"),
        (b"\xff\xd8\xff" + b"0" * 400_000, 413, "limit"),
    ],
    ids=["zero-bytes", "text-as-jpeg", "over-the-limit"],
)
def test_upload_refuses_bad_input_with_a_clear_error(
    dev: DevProcess, body: bytes, status: int, message: str
) -> None:
    response = dev.request(
        "POST", "/upload", body=body, headers={"Content-Type": "image/jpeg", "X-Filename": "p.jpg"}
    )
    assert response.status == status
    assert message in json.loads(response.data)["error"]


def _notify(dev: DevProcess, envelope: dict[str, Any]) -> None:
    response = dev.request(
        "POST", "/storage-events/", body=json.dumps(envelope), headers=storage_events_headers(dev.data_dir)
    )
    assert response.status == 200, response.data


@pytest.mark.rabbitmq
@pytest.mark.postgres
def test_s3_store_with_minio_webhooks_rabbitmq_and_postgres(
    tmp_path: Path, s3_url: str, amqp_url: str, postgres_schema_url: str
) -> None:
    broker_name = f"e2e-{uuid.uuid4().hex[:8]}"
    args = ["--keep-warm", "--store", s3_url, "--broker", amqp_url, "--db", postgres_schema_url]
    platform = DevProcess(tmp_path / "data", *args, env={"DATAFROST_BROKER_NAME": broker_name})
    s3 = S3ObjectStore(s3_url)
    try:
        platform.start()  # inside: a start that fails half-way still has its queues deleted
        response = platform.request(
            "POST", "/upload", body=camera_jpeg(), headers={"Content-Type": "image/jpeg"}
        )
        assert response.status == 201
        uploaded = json.loads(response.data)
        info = s3.stat("uploads", uploaded["key"])
        assert info is not None
        envelope = notification_for("s3:ObjectCreated:Put", info, "17A2B3C4D5E6F708")
        _notify(platform, envelope)
        _notify(platform, envelope)  # MinIO retried: still one catalog entry
        assert_ready_and_rotated(platform, wait_done(platform, uploaded["id"]))

        key = "bob/straight into the bucket (1).jpg"
        s3.put("uploads", key, camera_jpeg(), "image/jpeg")
        info = s3.stat("uploads", key)
        assert info is not None
        _notify(platform, notification_for("s3:ObjectCreated:Put", info, "17A2B3C4D5E6F709"))
        assert_ready_and_rotated(platform, wait_done(platform, image_id("uploads", key)))
        _, listing = platform.json("GET", "/catalog/images")
        assert sorted(r["id"] for r in listing["images"]) == sorted(
            [uploaded["id"], image_id("uploads", key)]
        )

        assert platform.request("DELETE", f"/catalog/images/{uploaded['id']}").status == 204
        assert s3.stat("uploads", uploaded["key"]) is None
        assert list(s3.list("variants", uploaded["id"] + "/")) == []
        _notify(
            platform,
            notification_for(
                "s3:ObjectRemoved:Delete", ObjectRef("uploads", uploaded["key"]), "17A2B3C4D5E6F800"
            ),
        )
        assert platform.request("GET", f"/catalog/images/{uploaded['id']}").status == 404
    finally:
        try:
            platform.stop()
        finally:
            delete_platform_broker(amqp_url, broker_name)
