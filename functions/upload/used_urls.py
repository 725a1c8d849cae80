"""One PUT per presigned URL of the local store: the first PUT claims the URL with a marker file.

The marker is created with O_CREAT|O_EXCL, which the filesystem grants to exactly one of any number of
concurrent claims (other threads, other processes), and synced to disk, so a URL stays used across
restarts. Markers live in the data dir beside the local store's buckets and are removed a while
after their URL expires (an expired URL is refused before it is claimed).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from pathlib import Path

PRUNE_AFTER_EXPIRY_SECONDS = 60  # a request checked just before expiry may still be claiming


class UsedUrls:
    """The presigned URLs (key and expiry) already used, as marker files in `folder`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _marker(self, key: str, expires: int) -> Path:
        digest = hashlib.sha256(f"{key}\n{expires}".encode()).hexdigest()
        return self.folder / f"{expires}-{digest}"

    def claim(self, key: str, expires: int) -> bool:
        """True for the one caller that uses the URL first; False for every other, at once or later."""
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self._marker(key, expires), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            return False
        try:
            os.write(fd, key.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        _sync_folder(self.folder)
        self._prune()
        return True

    def release(self, key: str, expires: int) -> None:
        """Give the URL back (its PUT stored nothing), so the client may try it again."""
        self._marker(key, expires).unlink(missing_ok=True)

    def _prune(self) -> None:
        """Forget markers of URLs that expired a while ago: they are refused as expired anyway."""
        horizon = time.time() - PRUNE_AFTER_EXPIRY_SECONDS
        with os.scandir(self.folder) as entries:
            for entry in entries:
                expires, _, _ = entry.name.partition("-")
                if expires.isascii() and expires.isdigit() and int(expires) < horizon:
                    Path(entry.path).unlink(missing_ok=True)


def _sync_folder(folder: Path) -> None:
    """Make the new marker's directory entry durable too."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):  # some filesystems cannot sync a directory
            os.fsync(fd)
    finally:
        os.close(fd)
