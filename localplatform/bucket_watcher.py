"""MinIO-format notifications for the local object store, by polling the bucket folders.

Every new, changed (size or mtime) or deleted file in a watched bucket folder is notified with the
envelope MinIO would send (`pipeline.minio_codec.notification_for`), whether LocalObjectStore wrote it
or a person copied it in: `s3:ObjectCreated:Put` for a new or changed file, `s3:ObjectRemoved:Delete`
for a deleted one. So the local store goes through the same decoding as real MinIO.

- A file the store wrote (its metadata sidecar matches) is complete and notified at the next poll.
  Any other file is notified once it is stable: the same size and mtime on two polls in a row and
  untouched for `settle` seconds (default: `interval`), so a file still being copied is notified
  once, when the copy is done (a copy that pauses longer than that is seen as done, then changed).
- What was notified is kept in SQLite at `state_path`: a restart notifies only what changed while the
  watcher was down and never re-notifies unchanged files.
- `notify` raising means "not delivered": the poll stops there and the next poll tries again.
  Sequencers are deterministic (the file's mtime in ns, hex; for a removal, the time it was first
  seen gone, kept in the state), so a retried notification decodes to the same CloudEvent id.
- Temporary files of atomic writes and the `.meta` sidecar folder are never objects.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.minio_codec import ObjectRef, notification_for
from shared.objectstore import check_bucket
from shared.objectstore.local import LocalObjectStore

log = logging.getLogger("datafrost.bucket_watcher")
CREATED = "s3:ObjectCreated:Put"
REMOVED = "s3:ObjectRemoved:Delete"
Signature = tuple[int, int]  # (size, mtime_ns)
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS notified (bucket TEXT, key TEXT, size INTEGER, mtime_ns INTEGER,"
    " PRIMARY KEY (bucket, key))",
    "CREATE TABLE IF NOT EXISTS removing (bucket TEXT, key TEXT, removed_ns INTEGER,"
    " PRIMARY KEY (bucket, key))",
)


class _State:
    """What has been notified, and removals first seen but not yet notified; in SQLite."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False)  # used under the watcher's lock
        with self._db:
            for statement in _SCHEMA:
                self._db.execute(statement)
        rows = self._db.execute("SELECT bucket, key, size, mtime_ns FROM notified")
        self.notified: dict[tuple[str, str], Signature] = {(b, k): (s, m) for b, k, s, m in rows}

    def created(self, bucket: str, key: str, signature: Signature) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO notified VALUES (?, ?, ?, ?)", (bucket, key, *signature))
            self._db.execute("DELETE FROM removing WHERE bucket = ? AND key = ?", (bucket, key))
        self.notified[bucket, key] = signature

    def removal_time(self, bucket: str, key: str) -> int:
        """When the file was first seen gone (kept, so a retry sends the same notification)."""
        with self._db:
            self._db.execute("INSERT OR IGNORE INTO removing VALUES (?, ?, ?)", (bucket, key, time.time_ns()))
        row = self._db.execute(
            "SELECT removed_ns FROM removing WHERE bucket = ? AND key = ?", (bucket, key)
        ).fetchone()
        return int(row[0])

    def removed(self, bucket: str, key: str) -> None:
        with self._db:
            self._db.execute("DELETE FROM notified WHERE bucket = ? AND key = ?", (bucket, key))
            self._db.execute("DELETE FROM removing WHERE bucket = ? AND key = ?", (bucket, key))
        self.notified.pop((bucket, key), None)

    def close(self) -> None:
        self._db.close()


class BucketWatcher:
    """A polling thread over `root/<bucket>/` for each bucket; `start()`, `stop()`, or `poll()` by hand."""

    def __init__(
        self,
        root: Path,
        buckets: list[str],
        notify: Callable[[dict[str, Any]], None],
        state_path: Path,
        interval: float = 0.5,
        *,
        settle: float | None = None,
    ) -> None:
        self.store = LocalObjectStore(root)
        self.buckets = [check_bucket(b) for b in buckets]
        self.interval = interval
        self.settle_ns = int((interval if settle is None else settle) * 1e9)
        self._notify = notify
        self._state = _State(state_path)
        self._previous: dict[str, dict[str, Signature]] = {}  # last poll's view, to judge stability
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> BucketWatcher:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="bucket-watcher", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop polling and close the state (a stopped watcher is not started again: make a new one)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        with self._lock:
            self._state.close()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.poll()
            except Exception:
                log.exception("bucket watcher poll failed")
            self._stopping.wait(self.interval)

    def poll(self) -> int:
        """One pass over every bucket; returns how many notifications were delivered."""
        with self._lock:
            sent = 0
            for bucket in self.buckets:
                done, ok = self._poll_bucket(bucket)
                sent += done
                if not ok:
                    break
            return sent

    def _poll_bucket(self, bucket: str) -> tuple[int, bool]:
        seen = {key: (st.st_size, st.st_mtime_ns) for key, st in self.store.scan(bucket)}
        previous, self._previous[bucket] = self._previous.get(bucket, {}), seen
        sent = 0
        for key, signature in seen.items():
            if self._state.notified.get((bucket, key)) == signature:
                continue
            if not self._complete(bucket, key, signature, previous.get(key)):
                continue  # new or still changing: wait until it holds still
            info = self.store.stat(bucket, key)
            if info is None or info.size != signature[0]:
                continue  # changed again since the scan
            sequencer = f"{signature[1]:X}"
            if not self._send(notification_for(CREATED, info, sequencer, event_time=info.last_modified)):
                return sent, False
            self._state.created(bucket, key, signature)
            sent += 1
        gone = [k for (b, k) in self._state.notified if b == bucket and k not in seen]
        for key in sorted(gone, key=str.encode):
            removed_ns = self._state.removal_time(bucket, key)
            moment = datetime.fromtimestamp(removed_ns / 1e9, UTC)
            envelope = notification_for(REMOVED, ObjectRef(bucket, key), f"{removed_ns:X}", event_time=moment)
            if not self._send(envelope):
                return sent, False
            self._state.removed(bucket, key)
            sent += 1
        return sent, True

    def _complete(self, bucket: str, key: str, signature: Signature, before: Signature | None) -> bool:
        if self.store.metadata_matches(bucket, key, *signature):
            return True  # written by the store, atomically
        age = time.time_ns() - signature[1]  # negative: an mtime in the future, set by hand
        return before == signature and (age >= self.settle_ns or age < 0)

    def _send(self, envelope: dict[str, Any]) -> bool:
        try:
            self._notify(envelope)
            return True
        except Exception as exc:
            log.warning("notify failed for %s, retrying on the next poll: %s", envelope.get("Key"), exc)
            return False
