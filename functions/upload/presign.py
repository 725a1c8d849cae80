"""Presigned uploads: one PUT of one object key under the caller's prefix, for a short time.

With MinIO/S3 the URL is MinIO's own presigned PUT (the client uploads straight to the bucket, and
MinIO's notification starts the pipeline). With the local store the URL points at this function's
`PUT /upload/put/<key>?expires=...&signature=...`, an HMAC-SHA256 over method, key and expiry with
DATAFROST_PRESIGN_SECRET, so the same client code works on one machine. That URL takes one PUT of an
accepted image (`functions.upload.used_urls`) and never replaces an object. (MinIO's own presigned
URLs are MinIO's: they take any bytes, as often as the holder likes, until they expire.)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from shared import params, safe_json
from shared.errors import HttpError
from shared.objectstore import ObjectStore
from shared.settings import Settings

DEFAULT_EXPIRY_SECONDS = 300
MAX_EXPIRY_SECONDS = 3600
MAX_FILENAME_CHARS = 255
MAX_BODY_BYTES = 4096  # of a presign request: two short fields
_EXPIRES = re.compile(r"[0-9]{1,12}")  # a Unix time in seconds, as `presign` writes it
_SIGNATURE = re.compile(r"[0-9a-f]{64}")  # HMAC-SHA256, hex


@dataclass(frozen=True)
class PresignRequest:
    """The JSON body of POST /upload/presign, every field checked for its exact type."""

    filename: str | None = None  # only its extension is used, when it is a known image extension
    expires_in: int = DEFAULT_EXPIRY_SECONDS

    @classmethod
    def from_body(cls, body: bytes) -> PresignRequest:
        """An empty body takes the defaults; anything else must be a JSON object of known fields."""
        if not body.strip():
            return cls()
        try:
            fields = safe_json.loads(body)
        except ValueError as exc:
            raise HttpError(f"the body must be a JSON object: {exc}") from None
        if not isinstance(fields, dict):
            raise HttpError(f"the body must be a JSON object, got {_json_kind(fields)}")
        unknown = sorted(set(fields) - {"filename", "expires_in"})
        if unknown:
            raise HttpError(
                f"unknown field(s) {', '.join(map(repr, unknown))}: expected filename, expires_in"
            )
        seconds = fields.get("expires_in", DEFAULT_EXPIRY_SECONDS)
        if type(seconds) is not int or not 1 <= seconds <= MAX_EXPIRY_SECONDS:  # a bool is not an int here
            raise HttpError(
                f"expires_in must be an integer from 1 to {MAX_EXPIRY_SECONDS} seconds, "
                f"got {_json_kind(seconds)} {params.shown(json.dumps(seconds))}"
            )
        filename = fields.get("filename")
        if "filename" in fields and not isinstance(filename, str):
            raise HttpError(f"filename must be a string, got {_json_kind(filename)}")
        return cls(params.text("filename", filename, MAX_FILENAME_CHARS) if filename else None, seconds)


def _json_kind(value: Any) -> str:
    kinds = {bool: "a boolean", int: "a number", float: "a number", str: "a string", type(None): "null"}
    return kinds.get(type(value), "an object" if isinstance(value, dict) else "an array")


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


def check_local_signature(config: Settings, key: str, expires: str, signature: str) -> int:
    """The URL's expiry; 403 unless the URL was signed here for this key and has not expired."""
    invalid = HttpError("this upload URL is not valid", 403)
    if not config.presign_secret or not _EXPIRES.fullmatch(expires) or not _SIGNATURE.fullmatch(signature):
        raise invalid
    if int(expires) < time.time():
        raise HttpError("this upload URL has expired: ask for a new one", 403)
    if not hmac.compare_digest(_signature(config.presign_secret, key, int(expires)), signature):
        raise invalid
    return int(expires)
