"""ObjectStore on MinIO or any S3-compatible endpoint, through the `minio` client.

The store URL is `http(s)://ACCESS_KEY:SECRET_KEY@HOST:PORT` (credentials percent-encoded when they
hold reserved characters). The credentials never appear in repr(), logs or error messages.
User metadata travels as `x-amz-meta-*` headers; names come back lower-case without the prefix.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

import urllib3
from minio import Minio
from minio.error import S3Error

from shared.objectstore import (
    USER_METADATA_PREFIX,
    ObjectInfo,
    ObjectNotFound,
    check_bucket,
    check_key,
    check_metadata,
    check_prefix,
)

DEFAULT_CONTENT_TYPE = "application/octet-stream"
_MISSING = frozenset({"NoSuchKey", "NoSuchBucket", "NoSuchVersion", "ResourceNotFound", "NoSuchObject"})
_EXISTS = frozenset({"BucketAlreadyOwnedByYou", "BucketAlreadyExists"})
URL_FORM = "http(s)://ACCESS_KEY:SECRET_KEY@HOST:PORT"


def parse_store_url(url: str) -> tuple[str, bool, str, str]:
    """(host:port, secure, access key, secret key) from the store URL; ValueError never echoes it."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        raise ValueError(f"the S3 store URL must look like {URL_FORM}") from None
    if parts.scheme not in ("http", "https") or not host or not parts.username or parts.password is None:
        raise ValueError(f"the S3 store URL must look like {URL_FORM}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"the S3 store URL must have no path or query: {URL_FORM}")
    endpoint = f"[{host}]" if ":" in host else host
    if port is not None:
        endpoint = f"{endpoint}:{port}"
    return endpoint, parts.scheme == "https", unquote(parts.username), unquote(parts.password)


def _user_metadata(headers: Mapping[str, str] | None) -> dict[str, str]:
    """`x-amz-meta-*` response headers, by lower-case name without the prefix."""
    prefix = USER_METADATA_PREFIX
    return {k.lower()[len(prefix) :]: v for k, v in (headers or {}).items() if k.lower().startswith(prefix)}


def _check(bucket: str, key: str) -> None:
    check_bucket(bucket)
    check_key(key)


class S3ObjectStore:
    """ObjectStore on an S3 endpoint; `region` skips the client's bucket-location look-up."""

    def __init__(self, url: str, *, region: str | None = None, timeout: float = 60.0) -> None:
        self.endpoint, self.secure, access_key, secret_key = parse_store_url(url)
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=10.0, read=timeout),
            maxsize=16,
            retries=urllib3.Retry(total=3, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        )
        self._client = Minio(
            self.endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=self.secure,
            region=region,
            http_client=http,
        )

    def __repr__(self) -> str:
        return f"S3ObjectStore(endpoint={('https://' if self.secure else 'http://') + self.endpoint!r})"

    def presigned_put_url(self, bucket: str, key: str, expires: timedelta) -> str:
        """A URL that lets its holder PUT this one object until it expires (S3 signature v4)."""
        return str(self._client.presigned_put_object(bucket, check_key(key), expires=expires))

    def ensure_bucket(self, bucket: str) -> None:
        check_bucket(bucket)
        if self._client.bucket_exists(bucket):
            return
        try:
            self._client.make_bucket(bucket)
        except S3Error as exc:
            if exc.code not in _EXISTS:
                raise

    def put(
        self,
        bucket: str,
        key: str,
        data: bytes,
        content_type: str,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        _check(bucket, key)
        user_metadata = check_metadata(metadata)
        content_type = content_type or DEFAULT_CONTENT_TYPE
        headers: dict[str, Any] = {USER_METADATA_PREFIX + k: v for k, v in user_metadata.items()}
        result = self._client.put_object(
            bucket, key, io.BytesIO(data), len(data), content_type=content_type, metadata=headers
        )
        etag, version = (result.etag or "").strip('"'), result.version_id or None
        return ObjectInfo(
            bucket, key, len(data), etag, content_type, datetime.now(UTC), user_metadata, version
        )

    def get(self, bucket: str, key: str) -> bytes:
        _check(bucket, key)
        try:
            response = self._client.get_object(bucket, key)
        except S3Error as exc:
            if exc.code in _MISSING:
                raise ObjectNotFound(f"{bucket}/{key}") from None
            raise
        try:
            return bytes(response.read())
        finally:
            response.close()
            response.release_conn()

    def stat(self, bucket: str, key: str) -> ObjectInfo | None:
        _check(bucket, key)
        try:
            found = self._client.stat_object(bucket, key)
        except S3Error as exc:
            if exc.code in _MISSING:
                return None
            raise
        return ObjectInfo(
            bucket,
            key,
            found.size or 0,
            (found.etag or "").strip('"'),
            found.content_type or DEFAULT_CONTENT_TYPE,
            found.last_modified or datetime.now(UTC),
            _user_metadata(found.metadata),
            found.version_id or None,
        )

    def delete(self, bucket: str, key: str) -> None:
        _check(bucket, key)
        try:
            self._client.remove_object(bucket, key)
        except S3Error as exc:
            if exc.code not in _MISSING:
                raise

    def list(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object under `prefix`, recursively, in key order. An S3 listing carries no content
        type or user metadata, so each listed object is stat'ed (objects gone meanwhile are skipped)."""
        check_bucket(bucket)
        check_prefix(prefix)
        try:
            for item in self._client.list_objects(bucket, prefix=prefix or None, recursive=True):
                if item.object_name is not None and not item.is_dir:
                    info = self.stat(bucket, item.object_name)
                    if info is not None:
                        yield info
        except S3Error as exc:
            if exc.code != "NoSuchBucket":
                raise
