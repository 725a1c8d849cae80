"""Presigned uploads: one PUT of one object key under the caller's prefix, for a short time.

With MinIO/S3 the URL is MinIO's own presigned PUT (the client uploads straight to the bucket, and
MinIO's notification starts the pipeline). With the local store the URL points at this function's
`PUT /upload/put/<key>?expires=...&signature=...`, an HMAC-SHA256 over method, key and expiry with
DATAFROST_PRESIGN_SECRET, so the same client code works on one machine.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from datetime import timedelta
from pathlib import PurePosixPath
from urllib.parse import quote

from shared.errors import HttpError
from shared.objectstore import ObjectStore
from shared.settings import Settings

DEFAULT_EXPIRY_SECONDS = 300
MAX_EXPIRY_SECONDS = 3600
SAFE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".gif", ".tif", ".tiff", ".bmp", ".avif", ".heic"}
)


def presigned_key(owner: str, filename: str | None) -> str:
    """A fresh key under the owner's prefix; the client's file name contributes only a known extension."""
    suffix = PurePosixPath(filename or "").suffix.lower()
    return f"{owner}/{uuid.uuid4().hex}{suffix if suffix in SAFE_EXTENSIONS else ''}"


def _signature(secret: str, key: str, expires: int) -> str:
    return hmac.new(secret.encode(), f"PUT\n{key}\n{expires}".encode(), hashlib.sha256).hexdigest()


def presign(store: ObjectStore, config: Settings, public_url: str, key: str, seconds: int) -> str:
    """The URL a client PUTs the object to."""
    if config.store != "local":
        client = getattr(store, "presigned_put_url", None)
        if client is None:
            raise HttpError("this object store cannot presign uploads", 501)
        return str(client(config.uploads_bucket, key, timedelta(seconds=seconds)))
    if not config.presign_secret:
        raise HttpError("presigned uploads need DATAFROST_PRESIGN_SECRET on this platform", 503)
    expires = int(time.time()) + seconds
    signature = _signature(config.presign_secret, key, expires)
    return f"{public_url}/upload/put/{quote(key)}?expires={expires}&signature={signature}"


def check_local_signature(config: Settings, key: str, expires: str, signature: str) -> None:
    """Raise 403 unless the URL was signed here for this key and has not expired."""
    if not config.presign_secret or not expires.isdigit():
        raise HttpError("this upload URL is not valid", 403)
    if int(expires) < time.time():
        raise HttpError("this upload URL has expired: ask for a new one", 403)
    if not hmac.compare_digest(_signature(config.presign_secret, key, int(expires)), signature):
        raise HttpError("this upload URL is not valid", 403)
