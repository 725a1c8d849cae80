"""The embedded object store: one folder per bucket, one plain file per object.

Layout under `root`:

- `root/<bucket>/<key>`: the object's bytes, a plain file, so a person can drop files into a bucket
  folder (the bucket watcher notifies them like MinIO would).
- `root/.meta/<bucket>/<h[:2]>/<h>.json` with h = sha256(key): a sidecar with the key, content
  type, user metadata and etag (MD5 hex, as S3 gives for a single-part upload), plus the size and
  mtime of the file it describes. A sidecar that does not match its file (replaced by hand) is
  ignored: the content type is then guessed from the name and the etag computed. `.meta` can never
  be a bucket (bucket names start with a letter or digit).

Writes go to a temporary file beside the target (`.datafrost-tmp-*`, never listed) and are moved into
place with `os.replace`; the sidecar is written before the object becomes visible, so any reader that
sees the new file also sees its metadata. Symlinks inside a bucket are not followed.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import hashlib
import json
import mimetypes
import os
import stat as stat_mode
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.objectstore import (
    InvalidKey,
    ObjectInfo,
    ObjectNotFound,
    check_bucket,
    check_key,
    check_metadata,
    check_prefix,
)

META_DIR = ".meta"
NAME_MAX = 255  # bytes in one file name (ext4, xfs, btrfs, APFS): the longest key segment this store holds
TEMP_PREFIX = ".datafrost-tmp-"
DEFAULT_CONTENT_TYPE = "application/octet-stream"
_CHUNK = 1024 * 1024


def guess_content_type(key: str) -> str:
    return mimetypes.guess_type(key, strict=False)[0] or DEFAULT_CONTENT_TYPE


def file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def is_temp_name(name: str) -> bool:
    """A temporary file of an atomic write in progress (never an object)."""
    return name.startswith(TEMP_PREFIX)


class LocalObjectStore:
    """ObjectStore on the local filesystem (see the module docstring for the layout)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def __repr__(self) -> str:
        return f"LocalObjectStore(root={str(self.root)!r})"

    # paths

    def bucket_path(self, bucket: str) -> Path:
        return self.root / check_bucket(bucket)

    def object_path(self, bucket: str, key: str) -> Path:
        check_key(key)
        segments = key.split("/")
        if any(is_temp_name(segment) for segment in segments):
            raise InvalidKey(f"key {key!r} uses the reserved prefix {TEMP_PREFIX!r}")
        longest = max(len(segment.encode()) for segment in segments)
        if longest > NAME_MAX:
            raise InvalidKey(
                f"key has a {longest}-byte segment; this store holds at most {NAME_MAX} per segment"
            )
        base = self.bucket_path(bucket)
        path = base.joinpath(*segments)
        # A symlinked folder inside the bucket could still lead elsewhere: refuse to go through it.
        if not path.parent.resolve().is_relative_to(base.resolve()):
            raise InvalidKey(f"key {key!r} leads out of bucket {bucket!r} (through a symlink)")
        return path

    def _sidecar_path(self, bucket: str, key: str) -> Path:
        # Named by a hash of the key: a tree named like the keys could collide ("a" -> a.json versus
        # "a.json/x" -> a.json/x.json), and a sidecar is never mistaken for an object.
        digest = hashlib.sha256(key.encode()).hexdigest()
        return self.root / META_DIR / bucket / digest[:2] / f"{digest}.json"

    # ObjectStore

    def ensure_bucket(self, bucket: str) -> None:
        self.bucket_path(bucket).mkdir(parents=True, exist_ok=True)

    def put(
        self,
        bucket: str,
        key: str,
        data: bytes,
        content_type: str,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        path = self.object_path(bucket, key)
        user_metadata = check_metadata(metadata)
        content_type = content_type or DEFAULT_CONTENT_TYPE
        if path.is_dir() and not path.is_symlink():
            raise InvalidKey(f"key {key!r} is a folder of other objects in this store")
        etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
        temp = _temp_file(path, data, fsync=True)
        try:
            st = temp.stat()
            sidecar = {
                "key": key,
                "content_type": content_type,
                "metadata": user_metadata,
                "etag": etag,
                "size": st.st_size,
                "mtime_ns": st.st_mtime_ns,
            }
            sidecar_path = self._sidecar_path(bucket, key)
            os.replace(_temp_file(sidecar_path, json.dumps(sidecar).encode(), fsync=False), sidecar_path)
            os.replace(temp, path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return ObjectInfo(bucket, key, st.st_size, etag, content_type, _mtime(st), user_metadata)

    def get(self, bucket: str, key: str) -> bytes:
        path = self.object_path(bucket, key)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError as exc:
            if isinstance(exc, FileNotFoundError | NotADirectoryError) or exc.errno == errno.ELOOP:
                raise ObjectNotFound(f"{bucket}/{key}") from None
            raise
        with os.fdopen(fd, "rb") as f:
            if not stat_mode.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ObjectNotFound(f"{bucket}/{key}")
            return f.read()

    def stat(self, bucket: str, key: str) -> ObjectInfo | None:
        path = self.object_path(bucket, key)
        try:
            st = path.lstat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat_mode.S_ISREG(st.st_mode):
            return None
        try:
            return self._info(bucket, key, path, st)
        except FileNotFoundError:
            return None  # deleted meanwhile

    def delete(self, bucket: str, key: str) -> None:
        path = self.object_path(bucket, key)
        sidecar = self._sidecar_path(bucket, key)
        if not path.is_dir() or path.is_symlink():
            _unlink(path)
        _unlink(sidecar)
        _prune(path.parent, self.bucket_path(bucket))
        _prune(sidecar.parent, self.root / META_DIR / bucket)

    def list(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        for key, st in self.scan(bucket, prefix):
            path = self.bucket_path(bucket).joinpath(*key.split("/"))
            try:
                yield self._info(bucket, key, path, st)
            except FileNotFoundError:
                continue  # deleted while listing

    # beyond the protocol: what the bucket watcher needs

    def scan(self, bucket: str, prefix: str = "") -> builtins.list[tuple[str, os.stat_result]]:
        """Every object's key and stat (no metadata, no hashing), in S3 order (UTF-8 byte order)."""
        check_prefix(prefix)
        base = self.bucket_path(bucket)
        folder, _, _ = prefix.rpartition("/")
        start = base.joinpath(*folder.split("/")) if folder else base
        if not start.resolve().is_relative_to(base.resolve()):
            return []  # the prefix's folder is a symlink out of the bucket
        found: list[tuple[str, os.stat_result]] = []
        _walk(start, folder + "/" if folder else "", prefix, found)
        found.sort(key=lambda item: item[0].encode())
        return found

    def metadata_matches(self, bucket: str, key: str, size: int, mtime_ns: int) -> bool:
        """True when the store wrote this exact file (its sidecar matches): it is complete."""
        return self._read_sidecar(bucket, key, size, mtime_ns) is not None

    # internals

    def _read_sidecar(self, bucket: str, key: str, size: int, mtime_ns: int) -> dict[str, Any] | None:
        try:
            sidecar = json.loads(self._sidecar_path(bucket, key).read_bytes())
        except (OSError, ValueError):
            return None
        if not isinstance(sidecar, dict) or (
            sidecar.get("key"),
            sidecar.get("size"),
            sidecar.get("mtime_ns"),
        ) != (key, size, mtime_ns):
            return None
        return sidecar

    def _info(self, bucket: str, key: str, path: Path, st: os.stat_result) -> ObjectInfo:
        sidecar = self._read_sidecar(bucket, key, st.st_size, st.st_mtime_ns)
        if sidecar is None:  # dropped in by hand, or replaced since the store wrote it
            return ObjectInfo(
                bucket, key, st.st_size, file_md5(path), guess_content_type(key), _mtime(st), {}
            )
        return ObjectInfo(
            bucket,
            key,
            st.st_size,
            str(sidecar.get("etag")),
            str(sidecar.get("content_type") or DEFAULT_CONTENT_TYPE),
            _mtime(st),
            dict(sidecar.get("metadata") or {}),
        )


def _mtime(st: os.stat_result) -> datetime:
    return datetime.fromtimestamp(st.st_mtime_ns / 1e9, UTC)


def _temp_file(path: Path, data: bytes, *, fsync: bool) -> Path:
    """Write `data` to a new temp file beside `path` (making folders); the caller os.replaces it."""
    for _ in range(5):  # a concurrent delete may prune the folder between mkdir and open
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise InvalidKey(f"{path.name!r}: a folder on its path is an object in this store") from None
        temp = path.with_name(f"{TEMP_PREFIX}{uuid.uuid4().hex}")
        try:
            with temp.open("xb") as f:
                f.write(data)
                if fsync:
                    f.flush()
                    os.fsync(f.fileno())
            return temp
        except FileNotFoundError:
            continue
    raise OSError(f"could not write beside {path}: its folder keeps disappearing")


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        path.unlink()


def _prune(folder: Path, stop: Path) -> None:
    """Remove empty folders from `folder` up to, not including, `stop`."""
    while folder != stop and folder.is_relative_to(stop):
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def _walk(folder: Path, key_prefix: str, prefix: str, found: list[tuple[str, os.stat_result]]) -> None:
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return
    for entry in entries:
        if is_temp_name(entry.name):
            continue
        key = key_prefix + entry.name
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat_mode.S_ISDIR(st.st_mode):
            if (key + "/").startswith(prefix) or prefix.startswith(key + "/"):
                _walk(Path(entry.path), key + "/", prefix, found)
        elif stat_mode.S_ISREG(st.st_mode) and key.startswith(prefix):
            try:
                check_key(key)
            except InvalidKey:
                continue  # a file name no S3 key could have (e.g. a backslash)
            found.append((key, st))
