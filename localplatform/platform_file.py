"""`<data dir>/platform.json`: where the `datafrost dev` using a data dir runs, for the CLI to find it.

Written once the platform listens (`{"url", "internal_url", "pid"}`), removed when it stops cleanly.
A file whose process is gone (a crash, a SIGKILL) is stale and read as no platform.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

PLATFORM_FILE = "platform.json"


@dataclass(frozen=True)
class RunningPlatform:
    url: str  # the public gateway
    internal_url: str  # the cluster-local listener
    pid: int


def write(data_dir: Path, platform: RunningPlatform) -> None:
    path = data_dir / PLATFORM_FILE
    tmp = path.with_name(f".{PLATFORM_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(platform.__dict__) + "\n")
    os.replace(tmp, path)


def read(data_dir: Path) -> RunningPlatform | None:
    """The platform running on `data_dir`, None when none is (no file, unreadable, or stale)."""
    try:
        raw = json.loads((data_dir / PLATFORM_FILE).read_text())
        found = RunningPlatform(str(raw["url"]), str(raw["internal_url"]), int(raw["pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return found if _alive(found.pid) else None


def remove(data_dir: Path, pid: int) -> None:
    """Remove the file if it is `pid`'s (a platform started later on the same data dir keeps its own)."""
    found = read(data_dir)
    if found is None or found.pid == pid:
        with contextlib.suppress(OSError):
            (data_dir / PLATFORM_FILE).unlink()


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: it exists
    try:  # a zombie has exited
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
