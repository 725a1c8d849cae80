"""DataFrost's event types and their payloads: named constants and typed dataclasses.

Every payload is the JSON data of a CloudEvent (`datacontenttype: application/json`). Object events
carry the extension attribute `bucket` so triggers can filter by bucket.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, TypeVar

OBJECT_CREATED = "io.datafrost.object.created"
OBJECT_REMOVED = "io.datafrost.object.removed"
IMAGE_ANALYZED = "io.datafrost.image.analyzed"
IMAGE_THUMBNAILED = "io.datafrost.image.thumbnailed"
IMAGE_REJECTED = "io.datafrost.image.rejected"
# The notification of a probe object reached storage-events (the store does notify); no trigger of the
# pipeline consumes it: `datafrost dev` watches the broker for it at start.
STORAGE_PROBED = "io.datafrost.storage.probed"
# What a Knative PingSource sends (knative.dev/eventing: sourcesv1.PingSourceEventType); its source is
# `/apis/v1/namespaces/<namespace>/pingsources/<name>`. The catalog runs a reconciler pass on each.
PING = "dev.knative.sources.ping"
RECONCILE_PING_DATA = {"run": "reconcile"}  # what the reconciler's pings carry (Knative's and dev's)
# Where the reconciler's events come from (the catalog re-emitting object events: reconcile.py).
RECONCILER_SOURCE = "/datafrost/catalog/reconcile"
# What to do when objects reach the uploads bucket with no notification (the probe, the reconciler).
NOTIFICATIONS_HINT = (
    "configure the store to notify storage-events: for MinIO `mc event add <alias>/<uploads bucket> "
    "arn:minio:sqs::datafrost:webhook --event put,delete` after setting notify_webhook (or "
    "MINIO_NOTIFY_WEBHOOK_ENDPOINT_DATAFROST=<gateway>/storage-events/ and "
    "MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_DATAFROST=<data dir>/auth/storage-events-token); README: "
    "'Storage: local folders or MinIO'"
)

KNOWN_TYPES = frozenset(
    {OBJECT_CREATED, OBJECT_REMOVED, IMAGE_ANALYZED, IMAGE_THUMBNAILED, IMAGE_REJECTED, STORAGE_PROBED}
)  # DataFrost's own types (metric labels); a ping is Knative's and counts as "other"
BUCKET_EXTENSION = "bucket"
# Keys under this prefix in the uploads bucket are DataFrost's own (a notification probe, say): never
# images, never catalogued, skipped by storage-events and the reconciler.
RESERVED_PREFIX = ".datafrost/"
PROBE_PREFIX = RESERVED_PREFIX + "probe/"

IMAGE_ID = re.compile(r"[0-9a-f]{32}")  # what `image_id` makes
T = TypeVar("T")
# What JSON each payload annotation accepts, checked when building payloads: a value of another
# kind would fail later, where it is used (a str method on an int, an int into a text column).
_FIELD_KINDS: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "str | None": (str, type(None)),
    "dict[str, Any]": (dict,),
    "dict[str, str]": (dict,),
    "list[Variant]": (list,),
}


def image_id(bucket: str, key: str) -> str:
    """The image id of an object: derived from where it lives, so every function computes the same one."""
    return hashlib.sha256(f"{bucket}/{key}".encode()).hexdigest()[:32]


def is_reserved_key(key: str) -> bool:
    """True for a key DataFrost keeps for itself (`RESERVED_PREFIX`): never an image."""
    return key.startswith(RESERVED_PREFIX)


def ping_source(namespace: str, name: str) -> str:
    """The source attribute of a PingSource's events (knative.dev/eventing: PingSourceSource)."""
    return f"/apis/v1/namespaces/{namespace}/pingsources/{name}"


def is_image_id(text: str) -> bool:
    """True for text `image_id` could have made (32 lower-case hex digits)."""
    return IMAGE_ID.fullmatch(text) is not None


def image_id_of(bucket: str | None, subject: str | None, data: Any) -> str | None:
    """The image an event is about, for log lines: its payload's image_id, else from bucket and key
    (object events: the key is the subject)."""
    if isinstance(data, dict) and isinstance(data.get("image_id"), str):
        return str(data["image_id"])
    if bucket and subject:
        return image_id(bucket, subject)
    return None


def _is_unicode_text(value: str) -> bool:
    """False for a str with an unpaired surrogate (JSON's "\\ud800" decodes to one): no text encodes it."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def payload(cls: type[T], data: Any) -> T:
    """Build a payload dataclass from decoded JSON; ValueError names a missing or unknown field."""
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__} data must be a JSON object")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    missing = [
        name
        for name, f in fields.items()
        if name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ValueError(f"{cls.__name__} is missing {', '.join(missing)}")
    known = {k: v for k, v in data.items() if k in fields}
    for name, value in known.items():
        annotation = str(fields[name].type)
        expected = _FIELD_KINDS.get(annotation)
        if expected is not None and (not isinstance(value, expected) or isinstance(value, bool)):
            raise ValueError(f"{cls.__name__}.{name} must be {annotation}, got {type(value).__name__}")
        if annotation == "dict[str, str]" and not all(isinstance(v, str) for v in value.values()):
            raise ValueError(f"{cls.__name__}.{name} must map names to strings")
        if isinstance(value, str) and not _is_unicode_text(value):
            raise ValueError(f"{cls.__name__}.{name} holds an unpaired surrogate: not Unicode text")
    if cls is ImageThumbnailed and "variants" in known:
        known["variants"] = [payload(Variant, v) for v in known["variants"]]
    return cls(**known)


@dataclass(frozen=True)
class ObjectCreated:
    bucket: str
    key: str  # decoded (MinIO sends it form-encoded)
    size: int
    etag: str
    content_type: str
    user_metadata: dict[str, str] = field(default_factory=dict)
    version_id: str | None = None
    sequencer: str = ""
    event_name: str = "s3:ObjectCreated:Put"
    event_time: str = ""


@dataclass(frozen=True)
class ObjectRemoved:
    bucket: str
    key: str
    version_id: str | None = None
    sequencer: str = ""
    event_name: str = "s3:ObjectRemoved:Delete"
    event_time: str = ""


@dataclass(frozen=True)
class ImageAnalyzed:
    image_id: str
    bucket: str
    key: str
    width: int  # after EXIF orientation
    height: int
    format: str  # JPEG, PNG, WEBP, GIF, TIFF, BMP, ...
    mode: str
    bytes: int
    sha256: str
    phash: str  # 64-bit perceptual hash, 16 hex digits
    exif: dict[str, Any] = field(default_factory=dict)
    dominant_color: str | None = None  # "#rrggbb"
    frames: int = 1
    owner: str | None = None


@dataclass(frozen=True)
class Variant:
    name: str
    bucket: str
    key: str
    width: int
    height: int
    format: str
    bytes: int


@dataclass(frozen=True)
class ImageThumbnailed:
    image_id: str
    bucket: str
    key: str
    variants: list[Variant] = field(default_factory=list)


@dataclass(frozen=True)
class ImageRejected:
    image_id: str
    bucket: str
    key: str
    reason: str  # for a person: what is wrong and what to do
    stage: str = "inspect"
