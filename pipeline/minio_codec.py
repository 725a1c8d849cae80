"""MinIO bucket notifications <-> DataFrost object CloudEvents. Pure: no I/O.

What MinIO sends (minio/minio), the same JSON for the webhook body and the AMQP message body:

- `internal/event/target/webhook.go` and `amqp.go` marshal `event.Log{EventName, Key, Records}`
  (Go field names, no JSON tags): `{"EventName": "s3:ObjectCreated:Put", "Key": "<bucket>/<decoded
  key>", "Records": [<one event>]}`. AMQP adds headers `minio-bucket`, `minio-event`.
- `internal/event/event.go` `Event`: `eventVersion` "2.0", `eventSource` "minio:s3", `awsRegion`,
  `eventTime` (format `2006-01-02T15:04:05.000Z`; MinIO before 2019 sent no milliseconds),
  `eventName`, `userIdentity`, `requestParameters`, `responseElements`, `s3` {`s3SchemaVersion`,
  `configurationId`, `bucket` {`name`, `ownerIdentity`, `arn`}, `object` {`key`, `size`,
  `eTag`, `contentType`, `userMetadata`, `versionId`, `sequencer`}}, `source`. In `object`
  everything but `key` and `sequencer` is `omitempty`: a 0-byte object has no `size`.
- `cmd/event-notification.go` `eventArgs.ToEvent`: `key` is `url.QueryEscape(name)` (form encoding:
  space -> `+`, `/` -> `%2F`, UTF-8 bytes as %XX); `sequencer` is the object's ModTime in UnixNano as
  upper-case hex; for `s3:ObjectRemoved:Delete`, `:DeleteMarkerCreated` and `:NoOP` there is no
  `eTag`, `size`, `contentType` or `userMetadata`; `userMetadata` holds `content-type` and the
  `X-Amz-Meta-*` headers (MinIO-internal entries removed).
- `internal/event/name.go`: s3:ObjectCreated:{Put, Post, Copy, CompleteMultipartUpload, PutRetention,
  PutLegalHold, PutTagging, DeleteTagging}; s3:ObjectRemoved:{Delete, DeleteMarkerCreated,
  DeleteAllVersions, NoOP}; s3:ObjectAccessed:*, s3:ObjectRestore:*, s3:Replication:*,
  s3:ObjectTransition:*, s3:Scanner:*, s3:LifecycleDelMarkerExpiration:Delete, s3:BucketCreated/Removed.

Mapping: object writes become `io.datafrost.object.created`; tagging, retention and legal-hold
changes (no new bytes) become nothing; removals become `io.datafrost.object.removed`, except `NoOP`
(a DELETE of a key that did not exist: nothing was removed); every other name becomes nothing.

Attributes: `source` = `minio:<bucket>`; `subject` = the decoded key (left out when the key holds a
character a CloudEvents string cannot carry); extension `bucket`; `time` = eventTime as RFC 3339 UTC
with milliseconds; `id` = `event_id(...)`, a hash of (bucket, key, versionId or eTag, sequencer,
event name), so MinIO redelivering a notification yields the same id.

Records no real object can have caused are skipped (`decode_notification` reports each with its
reason), never turned into events: a key the stores refuse (`shared.objectstore.check_key`: empty,
over 1024 UTF-8 bytes, control characters, `.` or `..` or empty segments, a leading `/`, a
backslash, or not UTF-8 once form-decoded), an invalid bucket name, or a sequencer that is not a
time in hex nanoseconds or lies more than MAX_SEQUENCER_AHEAD ahead. More than MAX_RECORDS records
make the whole notification invalid (MinIO sends one record per notification).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote_plus, unquote_plus

from eventing.cloudevent import CloudEvent, new_event
from eventing.validation import InvalidEvent, check_string
from pipeline.events import BUCKET_EXTENSION, OBJECT_CREATED, OBJECT_REMOVED, ObjectCreated, ObjectRemoved
from shared.objectstore import MAX_KEY_BYTES, USER_METADATA_PREFIX, ObjectInfo, check_bucket, check_key

CREATED_PREFIX = "s3:ObjectCreated:"
REMOVED_PREFIX = "s3:ObjectRemoved:"
# ObjectCreated names that change no bytes: no object.created for them.
NOT_CREATING = frozenset(
    {
        "s3:ObjectCreated:PutTagging",
        "s3:ObjectCreated:DeleteTagging",
        "s3:ObjectCreated:PutRetention",
        "s3:ObjectCreated:PutLegalHold",
    }
)
NOT_REMOVING = frozenset({"s3:ObjectRemoved:NoOP"})
DEFAULT_CONTENT_TYPE = "application/octet-stream"
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_SEQUENCER = re.compile(r"[0-9A-Fa-f]{1,16}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# MinIO sends one record per notification: a few is plenty, more is not MinIO.
MAX_RECORDS = 8
# How far ahead of this clock a sequencer may claim to be (clocks of MinIO hosts drift a little).
MAX_SEQUENCER_AHEAD = timedelta(minutes=5)
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")


class TooManyRecords(ValueError):
    """A notification with more records than MAX_RECORDS."""


class ImpossibleRecord(ValueError):
    """A well-formed record that no real object could have caused (skipped, never published)."""


@dataclass(frozen=True)
class SkippedRecord:
    """A record left out of a notification's events, and why."""

    index: int
    key: str  # as the record sent it (form-encoded)
    reason: str

    def as_json(self) -> dict[str, object]:
        return {"record": self.index, "key": self.key, "reason": self.reason}


@dataclass(frozen=True)
class DecodedNotification:
    """What one notification says: the object changes to check and publish, and what was skipped."""

    changes: list[tuple[int, ObjectCreated | ObjectRemoved]]  # (index in Records, change)
    skipped: list[SkippedRecord]


@dataclass(frozen=True)
class ObjectRef:
    """An object by name only: what a removal notification carries."""

    bucket: str
    key: str
    version_id: str | None = None


def event_source(bucket: str) -> str:
    return f"minio:{bucket}"


def event_id(bucket: str, key: str, version_or_etag: str, sequencer: str, event_name: str) -> str:
    """The CloudEvent id of a notification record: the same record always gives the same id."""
    material = json.dumps([bucket, key, version_or_etag, sequencer, event_name], ensure_ascii=False)
    return hashlib.sha256(material.encode()).hexdigest()[:32]


def encode_key(key: str) -> str:
    """The key as MinIO puts it in a notification: Go's url.QueryEscape."""
    return quote_plus(key, safe="")


def decode_key(encoded: str) -> str:
    """Form decoding (`+` is a space, %XX are UTF-8 bytes), strict like Go's url.QueryUnescape."""
    if _BAD_ESCAPE.search(encoded):
        raise ValueError(f"object key {encoded!r} has a malformed %-escape")
    try:
        return unquote_plus(encoded, errors="strict")
    except UnicodeDecodeError:
        raise ValueError(f"object key {encoded!r} does not decode to UTF-8") from None


def normalise_time(value: str) -> str:
    """An eventTime (with or without fractional seconds) as RFC 3339 UTC with milliseconds."""
    match = _TIME.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"eventTime {value!r} is not an ISO 8601 UTC timestamp")
    # Python parses at most 6 fractional digits; Go may send up to 9.
    text = value[: match.start(1)] + match.group(1)[:7] + value[match.end(1) :] if match.group(1) else value
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"eventTime {value!r} is not a valid date and time") from None
    return format_time(parsed)


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _get(mapping: Any, *path: str, kind: type = str, required: bool = True) -> Any:
    value = mapping
    for name in path:
        value = value.get(name) if isinstance(value, Mapping) else None
    if value is None and not required:
        return None
    if not isinstance(value, kind) or isinstance(value, bool) or (kind is str and required and not value):
        what = "a non-empty string" if kind is str else "an integer"
        raise ValueError(f"record field {'.'.join(path)} must be {what}")
    return value


def _user_metadata(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ValueError("record field s3.object.userMetadata must be an object")
    return {
        str(k).lower().removeprefix(USER_METADATA_PREFIX): str(v)
        for k, v in raw.items()
        if str(k).lower().startswith(USER_METADATA_PREFIX)
    }


def object_key(encoded: str) -> str:
    """The decoded key of a record; ImpossibleRecord when no real object can be named so."""
    try:
        return check_key(decode_key(encoded))
    except ValueError as exc:  # InvalidKey is a ValueError too
        raise ImpossibleRecord(str(exc)) from None


def sequencer_problem(sequencer: str, now: datetime) -> str | None:
    """Why `sequencer` cannot be MinIO's (an object's ModTime in UnixNano as hex), or None.

    A sequencer orders the versions of a key for every consumer: one claiming a moment later than
    `now` plus MAX_SEQUENCER_AHEAD would win over every real version to come, so it is refused.
    """
    if not _SEQUENCER.fullmatch(sequencer):
        return f"sequencer {sequencer[:40]!r} is not 1-16 hex digits (a time in ns)"
    latest = (now + MAX_SEQUENCER_AHEAD - _EPOCH) // timedelta(microseconds=1) * 1000
    if int(sequencer, 16) > latest:
        return f"sequencer {sequencer} claims a time more than {MAX_SEQUENCER_AHEAD} ahead of now"
    return None


def _object_data(record: Any, now: datetime) -> ObjectCreated | ObjectRemoved | None:
    """The payload of one record (None for names DataFrost ignores); ValueError when malformed,
    ImpossibleRecord when well-formed but no real object could have caused it."""
    if not isinstance(record, Mapping):
        raise ValueError("each of Records must be an object")
    name = _get(record, "eventName")
    creates = name.startswith(CREATED_PREFIX) and name not in NOT_CREATING
    removes = name.startswith(REMOVED_PREFIX) and name not in NOT_REMOVING
    if not (creates or removes):
        return None
    bucket = _get(record, "s3", "bucket", "name")
    encoded = _get(record, "s3", "object", "key", required=False)
    if encoded is None:
        raise ValueError("record field s3.object.key must be a string")
    obj = record["s3"]["object"]
    version = _get(record, "s3", "object", "versionId", required=False) or None
    etag = (_get(record, "s3", "object", "eTag", required=False) or "").strip('"')
    sequencer = _get(record, "s3", "object", "sequencer", required=False) or ""
    time = normalise_time(_get(record, "eventTime"))
    size = _get(record, "s3", "object", "size", kind=int, required=False) or 0
    if size < 0:
        raise ValueError("record field s3.object.size must not be negative")
    metadata_raw = obj.get("userMetadata", obj.get("userDefined"))  # userDefined: MinIO < 2019
    metadata = _user_metadata(metadata_raw)
    content_type = _get(record, "s3", "object", "contentType", required=False) or DEFAULT_CONTENT_TYPE
    # well-formed so far: what follows is about whether a real object could have caused the record
    try:
        check_bucket(bucket)
    except ValueError as exc:
        raise ImpossibleRecord(str(exc)) from None
    key = object_key(encoded)
    problem = sequencer_problem(sequencer, now)
    if problem is not None:
        raise ImpossibleRecord(problem)
    if creates:
        return ObjectCreated(bucket, key, size, etag, content_type, metadata, version, sequencer, name, time)
    return ObjectRemoved(bucket, key, version, sequencer, name, time)


def object_event(data: ObjectCreated | ObjectRemoved) -> CloudEvent:
    """The CloudEvent of an object change; its id depends on (bucket, key, version or eTag, sequencer,
    event name) only, so the same record always gives the same id."""
    creates = isinstance(data, ObjectCreated)
    version_or_etag = data.version_id or (data.etag if isinstance(data, ObjectCreated) else "")
    try:
        check_string("subject", data.key)
        subject: str | None = data.key
    except InvalidEvent:
        subject = None
    event = new_event(
        OBJECT_CREATED if creates else OBJECT_REMOVED,
        event_source(data.bucket),
        data,
        id=event_id(data.bucket, data.key, version_or_etag, data.sequencer, data.event_name),
        subject=subject,
        extensions={BUCKET_EXTENSION: data.bucket},
    )
    return event.with_attributes(time=data.event_time)


def decode_notification(body: Any, now: datetime | None = None) -> DecodedNotification:
    """The object changes of one MinIO notification, and the records skipped as impossible.

    ValueError names what is malformed: not an object, no Records list, more than MAX_RECORDS
    records (TooManyRecords), a record without its bucket, key, eventName or a valid eventTime.
    A record naming something no real object can be (an invalid key or bucket, a sequencer that is
    no time or lies ahead) is not an error of the notification: it is skipped, with its reason.
    """
    if not isinstance(body, Mapping):
        raise ValueError("a MinIO notification must be a JSON object")
    records = body.get("Records")
    if not isinstance(records, list):
        raise ValueError("a MinIO notification must have a Records list")
    if len(records) > MAX_RECORDS:
        raise TooManyRecords(
            f"a MinIO notification has {len(records)} records, over the limit of {MAX_RECORDS}"
            " (MinIO sends one per notification)"
        )
    moment = now or datetime.now(UTC)
    changes: list[tuple[int, ObjectCreated | ObjectRemoved]] = []
    skipped: list[SkippedRecord] = []
    for index, record in enumerate(records):
        try:
            data = _object_data(record, moment)
        except ImpossibleRecord as exc:
            skipped.append(SkippedRecord(index, _raw_key(record), str(exc)))
            continue
        except ValueError as exc:
            raise ValueError(f"Records[{index}]: {exc}") from None
        if data is not None:
            changes.append((index, data))
    return DecodedNotification(changes, skipped)


def cloudevents_from_notification(body: Any, now: datetime | None = None) -> list[CloudEvent]:
    """The object events of one MinIO notification (none for names DataFrost ignores, none for
    impossible records); ValueError as `decode_notification`."""
    return [object_event(data) for _, data in decode_notification(body, now).changes]


def _raw_key(record: Any) -> str:
    """The key as the record sent it (still encoded), for the report of a skipped record."""
    obj = record.get("s3", {}).get("object", {}) if isinstance(record, Mapping) else {}
    key = obj.get("key") if isinstance(obj, Mapping) else None
    return key[: MAX_KEY_BYTES * 3] if isinstance(key, str) else ""


def _canonical_header(name: str) -> str:
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def notification_for(
    event_name: str,
    obj: ObjectInfo | ObjectRef,
    sequencer: str,
    *,
    event_time: datetime | None = None,
    region: str = "",
) -> dict[str, Any]:
    """The notification MinIO would send for `event_name` on `obj` (an ObjectInfo for a write)."""
    item: dict[str, Any] = {"key": encode_key(obj.key)}
    if not event_name.startswith(REMOVED_PREFIX):  # removals carry no size, eTag or metadata
        if not isinstance(obj, ObjectInfo):
            raise TypeError(f"{event_name} needs an ObjectInfo (size, etag, content type)")
        user = {f"X-Amz-Meta-{_canonical_header(k)}": v for k, v in obj.user_metadata.items()}
        meta = {"content-type": obj.content_type, **user}
        fields = {"size": obj.size, "eTag": obj.etag, "contentType": obj.content_type, "userMetadata": meta}
        item.update({k: v for k, v in fields.items() if v})  # Go's omitempty
    if obj.version_id:
        item["versionId"] = obj.version_id
    item["sequencer"] = sequencer
    principal = "datafrost"
    record = {
        "eventVersion": "2.0",
        "eventSource": "minio:s3",
        "awsRegion": region,
        "eventTime": format_time(event_time or datetime.now(UTC)),
        "eventName": event_name,
        "userIdentity": {"principalId": principal},
        "requestParameters": {"principalId": principal, "region": region, "sourceIPAddress": "127.0.0.1"},
        "responseElements": {
            "x-amz-id-2": "",
            "x-amz-request-id": sequencer,
            "x-minio-deployment-id": "",
            "x-minio-origin-endpoint": "",
        },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "Config",
            "bucket": {
                "name": obj.bucket,
                "ownerIdentity": {"principalId": principal},
                "arn": f"arn:aws:s3:::{obj.bucket}",
            },
            "object": item,
        },
        "source": {"host": "127.0.0.1", "port": "", "userAgent": "datafrost"},
    }
    return {"EventName": event_name, "Key": f"{obj.bucket}/{obj.key}", "Records": [record]}
