"""The reconciler and the notification probe end to end: a real `datafrost dev` on an S3 store (moto on
loopback) that sends no notifications at all, as a MinIO without `mc event add` would."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import minio
import pytest
from sqlalchemy import update

from functions.catalog.handlers import open_catalog
from functions.catalog.schema import images as images_table
from pipeline.events import ObjectCreated, image_id
from shared.objectstore.s3 import S3ObjectStore, parse_store_url
from shared.settings import from_env
from tests.support import images
from tests.support.platform import DevProcess, add_dev_users

PROBE_SECONDS = 2
NOTIFICATIONS_OK = "datafrost_storage_notifications_ok"


@pytest.fixture
def buckets(s3_url: str) -> Iterator[tuple[str, str]]:
    """Uploads and variants buckets of this test alone (the S3 server lives for the session), removed
    with everything in them afterwards."""
    names = (f"rec-up-{uuid.uuid4().hex[:8]}", f"rec-var-{uuid.uuid4().hex[:8]}")
    store = S3ObjectStore(s3_url)
    for name in names:
        store.ensure_bucket(name)
    try:
        yield names
    finally:
        endpoint, secure, access, secret = parse_store_url(s3_url)
        client = minio.Minio(endpoint, access_key=access, secret_key=secret, secure=secure)
        for name in names:
            for info in list(store.list(name)):
                store.delete(name, info.key)
            client.remove_bucket(name)


def _env(uploads: str, variants: str, **more: str) -> dict[str, str]:
    return {
        "DATAFROST_UPLOADS_BUCKET": uploads,
        "DATAFROST_VARIANTS_BUCKET": variants,
        "DATAFROST_STORAGE_PROBE_SECONDS": str(PROBE_SECONDS),
        **more,
    }


def _record(dev: DevProcess, the_id: str) -> tuple[int, Any]:
    return dev.json("GET", f"/catalog/images/{the_id}")


def _wait(dev: DevProcess, expected: dict[str, int | str], timeout: float = 60.0) -> None:
    """Until each id has its expected status (404 for gone)."""
    deadline = time.monotonic() + timeout
    seen: dict[str, Any] = {}
    while time.monotonic() < deadline:
        for the_id in expected:
            code, body = _record(dev, the_id)
            seen[the_id] = body["status"] if code == 200 else code
        if seen == expected:
            return
        time.sleep(0.2)
    raise AssertionError(f"records {seen}, expected {expected}")


def test_one_pass_repairs_objects_never_notified_stuck_records_and_vanished_objects(
    tmp_path: Path, s3_url: str, buckets: tuple[str, str]
) -> None:
    """Objects are put while nothing listens (and the store never notifies). The catalog's database is
    prepared before the start, as the catalog itself would have written it: a record of an object whose
    processing events were lost (`processing`, last written an hour ago: stuck) and a record of an
    object removed without a notification (its object is not in the bucket). One pass repairs all of it
    and a second pass finds nothing to do."""
    uploads, variants = buckets
    store = S3ObjectStore(s3_url)
    never_notified = [f"ann/{n}.jpg" for n in ("first", "second")]
    stuck_key, gone_key = "ann/stuck.jpg", "bob/gone.jpg"
    for key in [*never_notified, stuck_key]:
        store.put(uploads, key, images.jpeg(image=images.scene(seed=len(key))), "image/jpeg")
    data_dir = tmp_path / "data"
    catalog = open_catalog(from_env({"DATAFROST_DATA_DIR": str(data_dir)}))
    stuck = store.stat(uploads, stuck_key)
    assert stuck is not None
    for key, etag in ((stuck_key, stuck.etag), (gone_key, "0123")):
        change = ObjectCreated(uploads, key, 100, etag, "image/jpeg", sequencer="17A2B3C4D5E6F708")
        catalog.writer.object_created(image_id(uploads, key), change)
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    with catalog.writer.engine.begin() as conn:
        conn.execute(update(images_table).values(updated_at=an_hour_ago))
    catalog.writer.engine.dispose()

    add_dev_users(data_dir, {"eve": ["editor"]})
    env = _env(uploads, variants, DATAFROST_RECONCILE_INTERVAL="0", DATAFROST_RECONCILE_GRACE_SECONDS="0")
    dev = DevProcess(data_dir, "--store", s3_url, env=env).start()
    try:
        code, summary = dev.json("POST", "/catalog/reconcile")
        assert code == 200, summary
        assert summary["repaired"] == {"missing": 2, "stuck": 1, "gone": 1, "gave_up": 0}
        assert (summary["emitted"], summary["unnotified"], summary["deferred"]) == (4, 2, 0)
        assert "mc event add" in summary["hint"]
        expected: dict[str, int | str] = {image_id(uploads, k): "ready" for k in [*never_notified, stuck_key]}
        expected[image_id(uploads, gone_key)] = 404
        _wait(dev, expected)
        assert dev.json("GET", f"/catalog/images/{image_id(uploads, stuck_key)}")[1]["variants"]

        code, again = dev.json("POST", "/catalog/reconcile")
        assert code == 200, again
        assert again["emitted"] == 0 and again["unnotified"] == 0 and again["deferred"] == 0
        assert set(again["repaired"].values()) == {0}
        code, kept = dev.json("GET", "/catalog/reconcile")
        assert code == 200 and kept["passes"] == [again]
        assert dev.json("POST", "/catalog/reconcile", user="eve")[0] == 403  # admin only
    finally:
        dev.stop()


def test_a_store_that_sends_no_notifications_is_reported_with_the_fix(
    tmp_path: Path, s3_url: str, buckets: tuple[str, str]
) -> None:
    uploads, variants = buckets
    dev = DevProcess(tmp_path / "data", "--store", s3_url, env=_env(uploads, variants)).start()
    try:
        deadline = time.monotonic() + PROBE_SECONDS + 30
        metric = None
        while time.monotonic() < deadline and metric is None:
            text = dev.request("GET", "/metrics").data.decode()
            found = [line for line in text.splitlines() if line.startswith(f"{NOTIFICATIONS_OK}{{")]
            metric = found[0] if found else None
            time.sleep(0.2)
        assert metric is not None and f'bucket="{uploads}"' in metric and metric.endswith(" 0.0"), metric
        warnings = [r for r in dev.logs() if r.get("level") == "warning" and "probe" in r.get("message", "")]
        assert warnings and "mc event add" in warnings[0]["message"]
        assert list(S3ObjectStore(s3_url).list(uploads)) == []  # the probe is gone again
        status = dev.cli("status")
        assert status.returncode == 0, status.stderr
        assert f"no probe notification from bucket {uploads}" in status.stdout
        assert "mc event add" in status.stdout
    finally:
        dev.stop()
