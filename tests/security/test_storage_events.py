"""Forged bucket notifications (issue 11 item 2) and events no object can have caused (item 3, first
half), through a real `datafrost dev` and straight at storage-events, inspect, thumbnail and catalog.

storage-events needs the webhook token `datafrost dev` makes, publishes only what the store bears
out, bounds records per notification and notifications per client, and skips records naming keys no
object can have; the image functions and the catalog refuse such events at once (422), never a 500.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import urllib3

from eventing.cloudevent import new_event
from eventing.http_codec import to_binary
from functions.inspect.main import SPEC as INSPECT
from functions.thumbnail.main import SPEC as THUMBNAIL
from localplatform.auth_wiring import STORAGE_EVENTS_TOKEN_FILE
from pipeline import events
from pipeline.minio_codec import MAX_RECORDS, ObjectRef, decode_notification, notification_for
from shared.objectstore import ObjectInfo
from shared.objectstore.local import LocalObjectStore
from tests.support import images
from tests.support.functions import ServedFunction, deliver
from tests.support.platform import DevProcess, add_dev_users, storage_events_headers
from tests.support.sink import Sink

web = urllib3.PoolManager(retries=False)
CREATED, REMOVED = "s3:ObjectCreated:Put", "s3:ObjectRemoved:Delete"
FAR_AHEAD = f"{int((datetime.now(UTC) + timedelta(days=3650)).timestamp() * 1e9):X}"  # ten years on
NOW_ISH = f"{time.time_ns():X}"


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevProcess]:
    data_dir = tmp_path_factory.mktemp("storage-events") / "data"
    add_dev_users(data_dir, {"alice": ["editor"]})
    platform = DevProcess(data_dir, "--keep-warm").start()
    try:
        yield platform
    finally:
        platform.stop()


def notify(dev: DevProcess, envelope: Any, headers: dict[str, str] | None = None) -> urllib3.BaseHTTPResponse:
    """POST a notification to storage-events through the gateway, as MinIO does (the token by default)."""
    body = envelope if isinstance(envelope, bytes) else json.dumps(envelope).encode()
    sent = storage_events_headers(dev.data_dir) if headers is None else headers
    return dev.request("POST", "/storage-events/", user=None, body=body, headers=sent)


def answer(response: urllib3.BaseHTTPResponse) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(response.data)
    return body


def forged_created(key: str, etag: str = "0" * 32, sequencer: str = NOW_ISH) -> dict[str, Any]:
    info = ObjectInfo("uploads", key, 1234, etag, "image/jpeg", datetime.now(UTC), {})
    return notification_for(CREATED, info, sequencer)


def forged_removed(key: str, sequencer: str = NOW_ISH) -> dict[str, Any]:
    return notification_for(REMOVED, ObjectRef("uploads", key), sequencer)


def record_of(dev: DevProcess, key: str) -> tuple[int, Any]:
    return dev.json("GET", f"/catalog/images/{events.image_id('uploads', key)}")


def test_datafrost_dev_makes_a_token_and_storage_events_requires_it(dev: DevProcess) -> None:
    token = (dev.data_dir / STORAGE_EVENTS_TOKEN_FILE).read_text().strip()
    assert len(token) >= 32
    assert (dev.data_dir / STORAGE_EVENTS_TOKEN_FILE).stat().st_mode & 0o077 == 0
    for headers in (
        {"Content-Type": "application/json"},
        {"Authorization": "Bearer wrong", "Content-Type": "application/json"},
        {"Authorization": f"Bearer {dev.token('alice')}"},  # a user's JWT is no webhook token
    ):
        for envelope in (forged_removed("alice/x.jpg"), forged_created("alice/y.jpg")):
            response = notify(dev, envelope, headers)
            assert response.status == 401, response.data
            assert answer(response) == {"error": "a valid 'Authorization: Bearer <token>' header is required"}


def test_a_forged_removal_of_an_existing_image_publishes_nothing(dev: DevProcess) -> None:
    image_id = dev.upload_ready("alice", images.jpeg((16, 16)))
    _, record = dev.json("GET", f"/catalog/images/{image_id}", user="alice")
    key = record["key"]
    for sequencer in (NOW_ISH, FAR_AHEAD):
        response = notify(dev, forged_removed(key, sequencer))
        assert response.status == 200, response.data
        (skipped,) = answer(response)["skipped"]
        assert answer(response)["published"] == []
        reason = "still exists" if sequencer == NOW_ISH else "ahead of now"
        assert reason in skipped["reason"], skipped
    # a real overwrite of the object still comes through, and the image stays visible
    (dev.data_dir / "buckets" / "uploads" / key).write_bytes(images.jpeg((24, 24)))
    deadline = time.monotonic() + 30
    while (body := dev.json("GET", f"/catalog/images/{image_id}", user="alice")[1])["width"] != 24:
        assert time.monotonic() < deadline, body
        time.sleep(0.1)
    assert body["status"] == "ready"


def test_a_forged_creation_plants_no_record(dev: DevProcess) -> None:
    response = notify(dev, forged_created("alice/planted.jpg"))
    assert response.status == 200
    assert answer(response)["published"] == []
    assert answer(response)["skipped"][0]["reason"] == "no object uploads/alice/planted.jpg in the store"
    # an existing object with another eTag than the notified one is not published either
    image_id = dev.upload_ready("alice", images.jpeg((12, 12)))
    key = dev.json("GET", f"/catalog/images/{image_id}", user="alice")[1]["key"]
    wrong = notify(dev, forged_created(key, etag="f" * 32))
    assert (
        answer(wrong)["published"] == [] and "not the notified 'ffff" in answer(wrong)["skipped"][0]["reason"]
    )
    # the store's facts win over the notification's: a real eTag with a forged size and metadata
    stored = LocalObjectStore(dev.data_dir / "buckets").stat("uploads", key)
    assert stored is not None
    lying = dataclasses.replace(stored, size=1, user_metadata={"traceparent": "forged"})
    published = notify(dev, notification_for(CREATED, lying, NOW_ISH))
    assert len(answer(published)["published"]) == 1
    assert record_of(dev, "alice/planted.jpg")[0] == 404
    deadline = time.monotonic() + 30
    while (record := record_of(dev, key)[1])["bytes"] != stored.size or record["status"] != "ready":
        assert time.monotonic() < deadline, record
        time.sleep(0.1)


def test_a_file_dropped_into_the_bucket_still_flows_end_to_end(dev: DevProcess) -> None:
    """The bucket watcher sends the generated token: the drop reaches the catalog as ready."""
    folder = dev.data_dir / "buckets" / "uploads" / "alice"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dropped.jpg").write_bytes(images.jpeg((20, 10)))
    deadline = time.monotonic() + 30
    while (found := record_of(dev, "alice/dropped.jpg"))[0] != 200 or found[1]["status"] != "ready":
        assert time.monotonic() < deadline, found
        time.sleep(0.1)
    (folder / "dropped.jpg").unlink()  # a real removal: the object is gone, so it is published
    while record_of(dev, "alice/dropped.jpg")[0] != 404:
        assert time.monotonic() < deadline, "the real removal never reached the catalog"
        time.sleep(0.1)
    (folder / "dropped.jpg").write_bytes(images.jpeg((10, 20)))  # re-uploaded: the record comes back
    while (found := record_of(dev, "alice/dropped.jpg"))[0] != 200 or found[1]["status"] != "ready":
        assert time.monotonic() < deadline, found
        time.sleep(0.1)
    assert found[1]["width"] == 10


def test_more_records_than_the_bound_is_413(dev: DevProcess) -> None:
    envelope = forged_removed("alice/many.jpg")
    envelope["Records"] = envelope["Records"] * (MAX_RECORDS + 1)
    response = notify(dev, envelope)
    assert response.status == 413
    assert answer(response) == {
        "error": f"a MinIO notification has {MAX_RECORDS + 1} records, over the limit of {MAX_RECORDS}"
        " (MinIO sends one per notification)"
    }
    envelope["Records"] = envelope["Records"][:MAX_RECORDS]  # at the bound: taken
    assert notify(dev, envelope).status == 200


IMPOSSIBLE_KEYS = [
    ("", "an object key must be a non-empty string"),
    ("a" * 1025, "1025 bytes long, over the 1024-byte limit"),
    ("%C3%A9" * 513, "1026 bytes long, over the 1024-byte limit"),  # 513 characters, 1026 UTF-8 bytes
    ("alice%2Fa%00b.jpg", "control character U+0000"),
    ("alice%2Fbell%07.jpg", "control character U+0007"),
    ("alice%2F..%2F..%2Fetc%2Fpasswd", "has a '..' segment"),
    ("alice%2F.%2Fa.jpg", "has a '.' segment"),
    ("%2Fabsolute.jpg", "is absolute"),
    ("alice%2F%FF%FE.jpg", "does not decode to UTF-8"),
    ("alice%2Fbad%zzescape.jpg", "malformed %-escape"),
]


@pytest.mark.parametrize(("encoded", "reason"), IMPOSSIBLE_KEYS)
def test_a_key_no_object_can_have_is_skipped_with_its_reason(
    dev: DevProcess, encoded: str, reason: str
) -> None:
    for envelope in (forged_created("placeholder"), forged_removed("placeholder")):
        envelope["Records"][0]["s3"]["object"]["key"] = encoded
        response = notify(dev, envelope)
        assert response.status == 200, response.data
        body = answer(response)
        assert body["published"] == [] and len(body["skipped"]) == 1, body
        assert body["skipped"][0]["record"] == 0 and body["skipped"][0]["key"] == encoded[: 1024 * 3]
        assert reason in body["skipped"][0]["reason"], body


@pytest.mark.parametrize(("encoded", "reason"), IMPOSSIBLE_KEYS)
def test_the_codec_never_makes_an_event_of_an_impossible_key(encoded: str, reason: str) -> None:
    envelope = forged_created("placeholder")
    good = forged_created("alice/fine.jpg")["Records"][0]
    envelope["Records"][0]["s3"]["object"]["key"] = encoded
    envelope["Records"].append(good)
    decoded = decode_notification(envelope)
    assert [(i, c.key) for i, c in decoded.changes] == [(1, "alice/fine.jpg")]
    (skipped,) = decoded.skipped
    assert skipped.index == 0 and reason in skipped.reason


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[ServedFunction]:
    """storage-events on its own: 1 notification a minute, 2 at once."""
    sink = Sink()
    env = {
        "K_SINK": sink.url,
        "DATAFROST_AUTH": "off",
        "DATAFROST_DATA_DIR": str(tmp_path),
        "DATAFROST_STORAGE_EVENTS_TOKEN": "t" * 32,
        "DATAFROST_STORAGE_EVENTS_RATE_PER_MINUTE": "1",
        "DATAFROST_STORAGE_EVENTS_BURST": "2",
    }
    served = ServedFunction("storage-events", env)
    try:
        yield served
    finally:
        served.stop()
        sink.close()


def test_past_its_rate_a_client_gets_429_with_retry_after(limited: ServedFunction) -> None:
    headers = {"Authorization": "Bearer " + "t" * 32, "Content-Type": "application/json"}
    body = json.dumps(forged_removed("alice/gone.jpg")).encode()
    for _ in range(2):
        assert web.request("POST", limited.url + "/", body=body, headers=headers).status == 200
    refused = web.request("POST", limited.url + "/", body=body, headers=headers)
    assert refused.status == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert (
        answer(refused)["error"]
        == f"too many notifications from this client; retry in {refused.headers['Retry-After']} s"
    )
    unauthenticated = web.request("POST", limited.url + "/", body=body)  # token guessing is limited too
    assert unauthenticated.status == 429
    # another client (the last X-Forwarded-For hop, which the gateway sets) has its own bucket
    other = {**headers, "X-Forwarded-For": "192.0.2.1, 198.51.100.7"}
    assert web.request("POST", limited.url + "/", body=body, headers=other).status == 200
    assert web.request("HEAD", limited.url + "/").status == 200  # MinIO's liveness check is never limited


def object_event(key: str, bucket: str = "uploads") -> Any:
    data = events.ObjectCreated(bucket, key, 10, "e" * 32, "image/jpeg", sequencer=NOW_ISH)
    return new_event(events.OBJECT_CREATED, "minio:uploads", dataclasses.asdict(data))


HOSTILE_KEYS = [
    ("alice/../../etc/passwd", "has a '..' segment"),
    ("alice/a\x00b.jpg", "control character U+0000"),
    ("/alice/a.jpg", "is absolute"),
    ("a" * 1025, "over the 1024-byte limit"),
    ("alice/" + "s" * 256 + ".jpg", "at most 255 per segment"),  # S3 takes it; the local store cannot
]


@pytest.mark.parametrize(("key", "reason"), HOSTILE_KEYS)
@pytest.mark.parametrize("spec", [INSPECT, THUMBNAIL], ids=["inspect", "thumbnail"])
def test_an_image_function_refuses_a_hostile_key_at_once(
    tmp_path: Path, spec: Any, key: str, reason: str
) -> None:
    response = deliver(spec, object_event(key), tmp_path)
    assert response.status_code == 422, response.get_data()
    error = json.loads(response.get_data())["error"]
    assert (
        error.startswith("io.datafrost.object.created names no object the store can hold") and reason in error
    )


CATALOG_REFUSALS = [
    (object_event("alice/../x.jpg"), "data cannot be stored: key 'alice/../x.jpg' has a '..' segment"),
    (object_event("/abs.jpg"), "is absolute"),
    (object_event("alice/x.jpg", bucket="No_Such_Bucket"), "bucket name 'No_Such_Bucket' is invalid"),
    (
        new_event(
            events.OBJECT_REMOVED,
            "minio:uploads",
            dataclasses.asdict(events.ObjectRemoved("uploads", "alice/x.jpg", sequencer=FAR_AHEAD)),
        ),
        "data cannot be ordered: sequencer",
    ),
    (
        new_event(
            events.IMAGE_REJECTED,
            "/functions/inspect",
            dataclasses.asdict(
                events.ImageRejected(events.image_id("uploads", "a/./b"), "uploads", "a/./b", "x")
            ),
        ),
        "has a '.' segment",
    ),
    (
        new_event(
            events.IMAGE_ANALYZED,
            "/functions/inspect",
            {
                **dataclasses.asdict(
                    events.ImageAnalyzed(
                        "0" * 32, "uploads", "alice/x.jpg", 1, 1, "JPEG", "RGB", 1, "0" * 64, "0" * 16
                    )
                ),
                "exif": "not an object",
            },
        ),
        "ImageAnalyzed.exif must be dict[str, Any], got str",
    ),
    (
        new_event(
            events.IMAGE_ANALYZED,
            "/functions/inspect",
            {
                **dataclasses.asdict(
                    events.ImageAnalyzed(
                        "0" * 32, "uploads", "alice/x.jpg", 1, 1, "JPEG", "RGB", 1, "0" * 64, "0" * 16
                    )
                ),
                "dominant_color": 5,
            },
        ),
        "ImageAnalyzed.dominant_color must be str | None, got int",
    ),
]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedFunction]:
    """The catalog in its own process (auth off: the broker's service token is tested elsewhere)."""
    env = {"DATAFROST_AUTH": "off", "DATAFROST_DATA_DIR": str(tmp_path_factory.mktemp("catalog"))}
    served = ServedFunction("catalog", env)
    try:
        yield served
    finally:
        served.stop()


@pytest.mark.parametrize(("event", "reason"), CATALOG_REFUSALS)
def test_the_catalog_refuses_an_event_no_object_can_have_caused(
    catalog: ServedFunction, event: Any, reason: str
) -> None:
    headers, body = to_binary(event)
    response = web.request("POST", catalog.url + "/", body=body, headers=headers)
    assert response.status == 422, response.data
    assert reason in answer(response)["error"]
    listing = web.request("GET", catalog.url + "/images")
    assert answer(listing)["images"] == []  # nothing planted


def test_a_hostile_event_through_the_broker_is_dead_lettered_once_not_retried(dev: DevProcess) -> None:
    """Sent into the broker of the running platform: each consumer refuses it at once (422)."""
    event = object_event("alice/../../escape.jpg").with_attributes(id="hostile-key-event")
    headers, body = to_binary(event.with_attributes(**{"bucket": "uploads"}))
    sent = dev.request("POST", "/brokers/default", body=body, headers=headers)
    assert sent.status == 202, sent.data
    deadline = time.monotonic() + 30
    while True:
        _, listing = dev.json("GET", "/dead-letters/")
        letters = [x for x in listing["dead_letters"] if x["event_id"] == "hostile-key-event"]
        if len(letters) >= 3:
            break
        assert time.monotonic() < deadline, listing
        time.sleep(0.1)
    assert sorted(str(x["code"]) for x in letters) == ["422"] * 3
    assert sorted(x["destination"].split("/")[3] for x in letters) == ["catalog", "inspect", "thumbnail"]
