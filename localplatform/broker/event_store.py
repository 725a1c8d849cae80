"""The durable local broker's SQLite file: one row per (event, trigger) until its delivery ends.

`queued` holds what waits or is being delivered, in publish order (`seq`), with the attempts made so
far; `dead` keeps what could not be delivered anywhere (the dead-letter queue of the RabbitMQ
broker). WAL journal, `synchronous=NORMAL`: a commit is in the WAL file when it returns, so a process
crash or SIGKILL loses nothing committed; only a power loss or OS crash can roll back the last
commits before the next checkpoint (the file stays consistent). `synchronous=FULL` would fsync every
publish. The file is locked to one process (`locking_mode=EXCLUSIVE`): a second `datafrost dev` on
the same data dir cannot deliver the same rows.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS queued (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    trigger TEXT NOT NULL,
    event BLOB NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    dead_letter_attempts INTEGER NOT NULL DEFAULT 0,
    failed_code INTEGER,
    failed_body BLOB
);
CREATE INDEX IF NOT EXISTS queued_by_trigger ON queued (trigger, seq);
CREATE TABLE IF NOT EXISTS dead (
    seq INTEGER PRIMARY KEY,
    trigger TEXT NOT NULL,
    event BLOB NOT NULL,
    attempts INTEGER NOT NULL,
    code INTEGER,
    at REAL NOT NULL
);
"""


class StoreUnavailable(RuntimeError):
    """The file cannot be opened or written (in use by another process, disk full, closed)."""


@dataclass(frozen=True)
class Row:
    seq: int
    event: bytes  # the event in the JSON format
    attempts: int  # to the subscriber, each counted before it was made
    dead_letter_attempts: int
    failed: tuple[int, bytes] | None  # the subscriber's final failure (code, body), once there was one


class EventStore:
    """The rows of one broker; safe to share between threads (one connection behind a lock). Once
    closed, writes are skipped (what they would have settled stays queued, for the next start) and the
    counts are those at closing."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._closed = False
        self._counts_at_close: tuple[dict[str, int], int] = ({}, 0)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=2.0)
            self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)  # writes: takes the exclusive lock now, not at the first publish
        except (OSError, sqlite3.Error) as exc:
            reason = str(exc)
            if "locked" in reason:
                reason = "it is in use by another process (a `datafrost dev` on the same data dir?)"
            raise StoreUnavailable(f"cannot open the broker's file {path}: {reason}") from None

    def add(self, rows: list[tuple[str, bytes]]) -> list[int]:
        """Insert (trigger, event) rows in one transaction; their seqs once committed."""
        with self._lock:
            if self._closed:
                raise StoreUnavailable("the broker is shutting down")
            if not rows:
                return []
            try:
                self._db.execute("BEGIN IMMEDIATE")
                seqs = []
                for trigger, event in rows:
                    cursor = self._db.execute(
                        "INSERT INTO queued (trigger, event) VALUES (?, ?)", (trigger, event)
                    )
                    seqs.append(int(cursor.lastrowid or 0))
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise StoreUnavailable(f"the broker's file {self.path} refused the events: {exc}") from None
            return seqs

    def load(self, trigger: str) -> list[Row]:
        """The trigger's rows, in publish order."""
        with self._lock:
            cursor = self._db.execute(
                "SELECT seq, event, attempts, dead_letter_attempts, failed_code, failed_body FROM queued "
                "WHERE trigger = ? ORDER BY seq",
                (trigger,),
            )
            return [
                Row(seq, event, attempts, dead, None if code is None else (code, body or b""))
                for seq, event, attempts, dead, code, body in cursor
            ]

    def attempting(
        self, seq: int, attempts: int, dead_letter_attempts: int, failed: tuple[int, bytes] | None
    ) -> None:
        """Record an attempt before it is made: a crash during it still counts it."""
        code, body = failed if failed is not None else (None, None)
        self._write(
            "UPDATE queued SET attempts = ?, dead_letter_attempts = ?, failed_code = ?, failed_body = ? "
            "WHERE seq = ?",
            (attempts, dead_letter_attempts, code, body, seq),
        )

    def remove(self, seq: int) -> None:
        self._write("DELETE FROM queued WHERE seq = ?", (seq,))

    def bury(self, seq: int, code: int | None) -> None:
        """Move a row to `dead`: it could be delivered nowhere."""
        with self._lock:
            if self._closed:
                return
            with self._db:  # one transaction (sqlite3's context manager commits or rolls back)
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(
                    "INSERT OR REPLACE INTO dead SELECT seq, trigger, event, attempts, ?, ? FROM queued "
                    "WHERE seq = ?",
                    (code, time.time(), seq),
                )
                self._db.execute("DELETE FROM queued WHERE seq = ?", (seq,))

    def purge(self, trigger: str) -> int:
        with self._lock:
            if self._closed:
                return 0
            return self._db.execute("DELETE FROM queued WHERE trigger = ?", (trigger,)).rowcount

    def counts(self) -> dict[str, int]:
        """Rows waiting per trigger."""
        with self._lock:
            if self._closed:
                return dict(self._counts_at_close[0])
            cursor = self._db.execute("SELECT trigger, COUNT(*) FROM queued GROUP BY trigger")
            return {trigger: int(n) for trigger, n in cursor}

    def dead_count(self) -> int:
        with self._lock:
            if self._closed:
                return self._counts_at_close[1]
            return self._dead_count()

    def _dead_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM dead").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            cursor = self._db.execute("SELECT trigger, COUNT(*) FROM queued GROUP BY trigger")
            self._counts_at_close = ({trigger: int(n) for trigger, n in cursor}, self._dead_count())
            self._closed = True
            self._db.close()

    def _write(self, sql: str, parameters: tuple[object, ...]) -> None:
        with self._lock:
            if not self._closed:
                self._db.execute(sql, parameters)
