"""The bucket watcher on real folders: store writes, files copied in by hand, restarts, slow copies."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from eventing.cloudevent import CloudEvent
from localplatform.bucket_watcher import BucketWatcher
from pipeline.events import OBJECT_CREATED, OBJECT_REMOVED
from pipeline.minio_codec import cloudevents_from_notification
from shared.objectstore.local import TEMP_PREFIX, LocalObjectStore

BUCKET = "uploads"
MakeWatcher = Callable[..., BucketWatcher]


class Recorder:
    """The watcher's `notify`: keeps every envelope, can be told to fail the next calls."""

    def __init__(self) -> None:
        self.envelopes: list[dict[str, Any]] = []
        self.attempts: list[dict[str, Any]] = []
        self.failures = 0
        self.lock = threading.Lock()

    def __call__(self, envelope: dict[str, Any]) -> None:
        with self.lock:
            self.attempts.append(envelope)
            if self.failures:
                self.failures -= 1
                raise ConnectionError("broker down")
            self.envelopes.append(envelope)

    def events(self) -> list[CloudEvent]:
        with self.lock:
            return [e for env in self.envelopes for e in cloudevents_from_notification(env)]

    def summary(self) -> list[tuple[str, str | None]]:
        return [("created" if e.type == OBJECT_CREATED else "removed", e.subject) for e in self.events()]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "buckets"


@pytest.fixture
def store(root: Path) -> LocalObjectStore:
    store = LocalObjectStore(root)
    store.ensure_bucket(BUCKET)
    return store


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def watchers(root: Path, tmp_path: Path, recorder: Recorder) -> Iterator[MakeWatcher]:
    made: list[BucketWatcher] = []

    def make(**kwargs: Any) -> BucketWatcher:
        kwargs.setdefault("settle", 0.0)
        made.append(BucketWatcher(root, [BUCKET], recorder, tmp_path / "state" / "watcher.db", **kwargs))
        return made[-1]

    yield make
    for watcher in made:
        watcher.stop()


def drop(root: Path, key: str, data: bytes) -> Path:
    path = root / BUCKET / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_a_store_write_is_notified_at_once_with_its_metadata(
    store: LocalObjectStore, watchers: MakeWatcher, recorder: Recorder
) -> None:
    watcher = watchers()
    store.put(BUCKET, "2024/cat photo.jpg", b"meow", "image/jpeg", {"owner": "alice"})
    assert watcher.poll() == 1
    (event,) = recorder.events()
    assert (event.type, event.subject, event.get("bucket")) == (OBJECT_CREATED, "2024/cat photo.jpg", BUCKET)
    data = event.json()
    assert (data["size"], data["content_type"], data["user_metadata"]) == (
        4,
        "image/jpeg",
        {"owner": "alice"},
    )
    assert recorder.envelopes[0]["EventName"] == "s3:ObjectCreated:Put"
    assert watcher.poll() == 0  # nothing changed, nothing re-notified


def test_a_file_copied_in_is_notified_once_stable(
    root: Path, store: LocalObjectStore, watchers: MakeWatcher, recorder: Recorder
) -> None:
    watcher = watchers()
    drop(root, "dropped/pic.png", b"png")
    assert watcher.poll() == 0  # first sight: it may still be growing
    assert watcher.poll() == 1
    (event,) = recorder.events()
    assert event.subject == "dropped/pic.png" and event.json()["content_type"] == "image/png"


def test_modify_and_delete(
    root: Path, store: LocalObjectStore, watchers: MakeWatcher, recorder: Recorder
) -> None:
    watcher = watchers()
    path = drop(root, "a.jpg", b"one")
    watcher.poll(), watcher.poll()
    path.write_bytes(b"two, longer")
    watcher.poll(), watcher.poll()
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 5_000_000_000))  # same size, new mtime
    watcher.poll(), watcher.poll()
    path.unlink()
    assert watcher.poll() == 1
    assert recorder.summary() == [("created", "a.jpg")] * 3 + [("removed", "a.jpg")]
    sizes = [e.json().get("size") for e in recorder.events()]
    assert sizes == [3, 11, 11, None]
    assert len({e.id for e in recorder.events()}) == 4


def test_a_restart_notifies_only_what_changed_while_down(
    root: Path, store: LocalObjectStore, watchers: MakeWatcher, recorder: Recorder
) -> None:
    first = watchers()
    for key in ("same.jpg", "changed.jpg", "deleted.jpg"):
        store.put(BUCKET, key, key.encode(), "image/jpeg")
    assert first.poll() == 3
    first.stop()
    recorder.envelopes.clear()

    store.put(BUCKET, "changed.jpg", b"a new version", "image/jpeg")
    store.delete(BUCKET, "deleted.jpg")
    drop(root, "new/hand.jpg", b"by hand")
    second = watchers()
    second.poll(), second.poll()
    assert sorted(recorder.summary()) == [
        ("created", "changed.jpg"),
        ("created", "new/hand.jpg"),
        ("removed", "deleted.jpg"),
    ]
    assert second.poll() == 0


def test_temp_files_and_sidecars_are_not_objects(
    root: Path, store: LocalObjectStore, watchers: MakeWatcher, recorder: Recorder
) -> None:
    watcher = watchers()
    drop(root, f"sub/{TEMP_PREFIX}123", b"half a write")
    store.put(BUCKET, "real.jpg", b"x", "image/jpeg")
    watcher.poll(), watcher.poll()
    assert recorder.summary() == [("created", "real.jpg")]
    assert (root / ".meta").is_dir()


def test_a_failed_notify_is_retried_with_the_same_id(
    root: Path, store: LocalObjectStore, watchers: MakeWatcher, recorder: Recorder
) -> None:
    watcher = watchers()
    store.put(BUCKET, "a.jpg", b"x", "image/jpeg")
    store.put(BUCKET, "b.jpg", b"y", "image/jpeg")
    recorder.failures = 1
    assert watcher.poll() == 0  # the first failure stops the pass
    assert watcher.poll() == 2
    store.delete(BUCKET, "a.jpg")
    recorder.failures = 1
    assert watcher.poll() == 0
    watcher.stop()
    restarted = watchers()  # the pending removal survives a restart
    assert restarted.poll() == 1
    ids = [cloudevents_from_notification(a)[0].id for a in recorder.attempts]
    assert ids[0] == ids[1] and ids[3] == ids[4]
    assert recorder.summary() == [("created", "a.jpg"), ("created", "b.jpg"), ("removed", "a.jpg")]


def test_a_slow_copy_is_notified_once_complete(
    root: Path, store: LocalObjectStore, watchers: MakeWatcher, recorder: Recorder
) -> None:
    watchers(interval=0.2, settle=0.2).start()
    chunks = 40
    with (root / BUCKET / "big.bin").open("wb") as f:
        for _ in range(chunks):
            f.write(b"x" * 1000)
            f.flush()
            time.sleep(0.02)
    deadline = time.monotonic() + 10
    while not recorder.events() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # a few more polls: nothing more may come
    (event,) = recorder.events()
    assert event.json()["size"] == chunks * 1000


def test_the_polling_thread_sees_puts_and_deletes(
    store: LocalObjectStore, watchers: MakeWatcher, recorder: Recorder
) -> None:
    watchers(interval=0.05).start()
    store.put(BUCKET, "t.jpg", b"x", "image/jpeg")
    _wait_for(recorder, 1)
    store.delete(BUCKET, "t.jpg")
    _wait_for(recorder, 2)
    assert [e.type for e in recorder.events()] == [OBJECT_CREATED, OBJECT_REMOVED]


def _wait_for(recorder: Recorder, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while len(recorder.events()) < count:
        assert time.monotonic() < deadline, f"got {recorder.summary()}, expected {count} events"
        time.sleep(0.02)
