"""`datafrost dev`'s upkeep: the reconciler's pings and the notification probe, on a real memory broker
and a real local store (storage-events' part played by a thread that publishes what it would)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from eventing.cloudevent import CloudEvent, new_event
from localplatform.broker.memory import MemoryBroker
from localplatform.upkeep import PING_SOURCE, NotificationProbe, ReconcilePings
from pipeline.events import PING, PROBE_PREFIX, STORAGE_PROBED
from shared.objectstore.factory import open_store
from shared.settings import Settings, from_env


@pytest.fixture
def broker() -> Iterator[MemoryBroker]:
    broker = MemoryBroker(f"upkeep-{uuid.uuid4().hex[:6]}")
    try:
        yield broker
    finally:
        broker.close()


def _settings(tmp_path: Path, probe_seconds: int) -> Settings:
    bucket = f"probe-{uuid.uuid4().hex[:8]}"  # its own metric sample
    return from_env(
        {
            "DATAFROST_DATA_DIR": str(tmp_path),
            "DATAFROST_UPLOADS_BUCKET": bucket,
            "DATAFROST_STORAGE_PROBE_SECONDS": str(probe_seconds),
        }
    )


def _notifications_ok(bucket: str) -> float | None:
    return REGISTRY.get_sample_value("datafrost_storage_notifications_ok", {"bucket": bucket})


def _until(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_a_ping_is_published_at_start_with_the_id_of_its_tick(broker: MemoryBroker) -> None:
    seen: list[CloudEvent] = []
    broker.observers.append(seen.extend)
    before = int(time.time() // 3600)
    pings = ReconcilePings(broker, 3600).start()
    try:
        _until(lambda: seen)
    finally:
        pings.stop()
    after = int(time.time() // 3600)
    (ping,) = seen
    assert ping.type == PING and ping.source == PING_SOURCE
    assert ping.id in {f"reconcile-{before}", f"reconcile-{after}"}


def test_the_probe_reports_a_store_that_notifies_and_removes_its_object(
    tmp_path: Path, broker: MemoryBroker
) -> None:
    config = _settings(tmp_path, probe_seconds=20)
    store = open_store(config)
    store.ensure_bucket(config.uploads_bucket)

    def storage_events() -> None:  # publishes the probe's notification, as storage-events would
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for info in store.list(config.uploads_bucket, PROBE_PREFIX):
                probed = new_event(STORAGE_PROBED, f"minio:{config.uploads_bucket}", {}, subject=info.key)
                broker.publish([probed])
                return
            time.sleep(0.05)

    notifier = threading.Thread(target=storage_events)
    notifier.start()
    probe = NotificationProbe(config, broker).start()
    try:
        _until(lambda: _notifications_ok(config.uploads_bucket) is not None, timeout=30)
    finally:
        probe.stop()
        notifier.join()
    assert _notifications_ok(config.uploads_bucket) == 1.0
    assert list(store.list(config.uploads_bucket)) == []
    assert broker.observers == []


def test_the_probe_reports_a_silent_store(tmp_path: Path, broker: MemoryBroker) -> None:
    config = _settings(tmp_path, probe_seconds=1)
    store = open_store(config)
    store.ensure_bucket(config.uploads_bucket)
    others: Sequence[CloudEvent] = [new_event(STORAGE_PROBED, "minio:x", {}, subject=f"{PROBE_PREFIX}other")]
    probe = NotificationProbe(config, broker).start()
    try:
        broker.publish(others)  # another probe's notification is not this one's
        _until(lambda: _notifications_ok(config.uploads_bucket) is not None)
    finally:
        probe.stop()
    assert _notifications_ok(config.uploads_bucket) == 0.0
    assert list(store.list(config.uploads_bucket)) == []
