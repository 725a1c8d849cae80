"""Object storage: one interface, two implementations.

`LocalObjectStore` keeps buckets as folders under the data dir (the embedded default; its watcher
sends the same notifications MinIO would). `S3ObjectStore` talks to MinIO or any S3-compatible
endpoint through the `minio` client (the production path).
"""

from __future__ import annotations

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
