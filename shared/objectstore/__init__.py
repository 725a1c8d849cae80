"""Object storage: one interface, two implementations.

`LocalObjectStore` keeps buckets as folders under the data dir (the embedded default; its watcher
sends the same notifications MinIO would). `S3ObjectStore` talks to MinIO or any S3-compatible
endpoint through the `minio` client (the production path).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


class ObjectNotFound(KeyError):
    """No object at that bucket and key."""


class InvalidKey(ValueError):
    """A key that could escape its bucket or prefix (.., absolute, empty segments, control chars)."""


@dataclass(frozen=True)
class ObjectInfo:
    bucket: str
    key: str
    size: int
    etag: str
    content_type: str
    last_modified: datetime
    user_metadata: Mapping[str, str] = field(default_factory=dict)
    version_id: str | None = None


class ObjectStore(Protocol):
    """What the functions need from a bucket store. Keys are plain (decoded) strings."""

    def ensure_bucket(self, bucket: str) -> None: ...

    def put(
        self,
        bucket: str,
        key: str,
        data: bytes,
        content_type: str,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo: ...

    def get(self, bucket: str, key: str) -> bytes:
        """The whole object; raises ObjectNotFound."""
        ...

    def stat(self, bucket: str, key: str) -> ObjectInfo | None: ...

    def delete(self, bucket: str, key: str) -> None:
        """Remove the object; deleting a missing object is not an error (idempotent)."""
        ...

    def list(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]: ...


MAX_KEY_BYTES = 1024
MAX_METADATA_BYTES = 2048  # S3's limit on user metadata (names and values together)
USER_METADATA_PREFIX = "x-amz-meta-"
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_METADATA_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")


def _check_chars(what: str, value: str) -> None:
    for char in value:
        if ord(char) < 0x20 or ord(char) == 0x7F:
            raise InvalidKey(f"{what} {value!r} contains control character U+{ord(char):04X}")
    if "\\" in value:
        raise InvalidKey(f"{what} {value!r} contains a backslash")
    try:
        size = len(value.encode())
    except UnicodeEncodeError:
        raise InvalidKey(f"{what} {value!r} is not valid Unicode (unpaired surrogate)") from None
    if size > MAX_KEY_BYTES:
        raise InvalidKey(f"{what} is {size} bytes long, over the {MAX_KEY_BYTES}-byte limit")


def _check_segments(what: str, value: str, segments: list[str]) -> None:
    if value.startswith("/"):
        raise InvalidKey(f"{what} {value!r} is absolute (starts with '/')")
    for segment in segments:
        if segment == "":
            raise InvalidKey(f"{what} {value!r} has an empty path segment")
        if segment in (".", ".."):
            raise InvalidKey(f"{what} {value!r} has a {segment!r} segment")


def check_key(key: str) -> str:
    """The key when it cannot escape its bucket; InvalidKey names what is wrong otherwise.

    Rejected: empty, absolute, empty / `.` / `..` segments, backslashes, NUL and other control
    characters, unpaired surrogates, more than 1024 UTF-8 bytes. Every store applies the same rules.
    """
    if not isinstance(key, str) or key == "":
        raise InvalidKey("an object key must be a non-empty string")
    _check_chars("key", key)
    _check_segments("key", key, key.split("/"))
    return key


def check_prefix(prefix: str) -> str:
    """A listing prefix: "" or a key's beginning (may end in '/' or part-way through a segment)."""
    if not isinstance(prefix, str):
        raise InvalidKey("a prefix must be a string")
    if prefix:
        _check_chars("prefix", prefix)
        _check_segments("prefix", prefix, prefix.split("/")[:-1])
    return prefix


def check_bucket(bucket: str) -> str:
    """An S3 bucket name: 3-63 of a-z, 0-9, '.', '-', starting and ending with a letter or digit."""
    if not isinstance(bucket, str) or not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise InvalidKey(f"bucket name {bucket!r} is invalid: 3-63 characters of a-z, 0-9, '.' and '-'")
    return bucket


def check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """User metadata as every store keeps it: names lower-cased (an `x-amz-meta-` prefix dropped),
    values stripped; names are tokens, values printable US-ASCII (what S3 headers can carry)."""
    checked: dict[str, str] = {}
    for raw_name, raw_value in (metadata or {}).items():
        name = str(raw_name).lower()
        name = name.removeprefix(USER_METADATA_PREFIX)
        if not _METADATA_NAME.fullmatch(name):
            raise ValueError(f"metadata name {raw_name!r} must be letters, digits, '.', '_' and '-'")
        value = str(raw_value).strip()
        if any(not 0x20 <= ord(c) <= 0x7E for c in value):
            raise ValueError(f"metadata {name!r} must be printable US-ASCII (S3 headers carry no more)")
        checked[name] = value
    size = sum(len(k) + len(v) for k, v in checked.items())
    if size > MAX_METADATA_BYTES:
        raise ValueError(f"user metadata is {size} bytes, over the {MAX_METADATA_BYTES}-byte limit")
    return checked
