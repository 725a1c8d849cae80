"""A dict-backed ObjectStore for handler tests: the protocol's behaviour, plus a count of reads."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime

from shared.objectstore import ObjectInfo, ObjectNotFound


class MemoryObjectStore:
    def __init__(self) -> None:
        self.buckets: dict[str, dict[str, tuple[bytes, ObjectInfo]]] = {}
        self.gets = 0

    def ensure_bucket(self, bucket: str) -> None:
        self.buckets.setdefault(bucket, {})

    def put(
        self,
        bucket: str,
        key: str,
        data: bytes,
        content_type: str,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        if bucket not in self.buckets:
            raise ObjectNotFound(f"no bucket {bucket}")
        etag = hashlib.md5(data).hexdigest()
        info = ObjectInfo(bucket, key, len(data), etag, content_type, datetime.now(UTC), dict(metadata or {}))
        self.buckets[bucket][key] = (data, info)
        return info

    def get(self, bucket: str, key: str) -> bytes:
        self.gets += 1
        try:
            return self.buckets[bucket][key][0]
        except KeyError:
            raise ObjectNotFound(f"{bucket}/{key}") from None

    def stat(self, bucket: str, key: str) -> ObjectInfo | None:
        found = self.buckets.get(bucket, {}).get(key)
        return None if found is None else found[1]

    def delete(self, bucket: str, key: str) -> None:
        self.buckets.get(bucket, {}).pop(key, None)

    def list(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        for key in sorted(self.buckets.get(bucket, {})):
            if key.startswith(prefix):
                yield self.buckets[bucket][key][1]
