"""The reconciler's plan: what a pass repairs, from a bucket listing and the catalog's records (pure).

Notifications can be lost outside DataFrost (a MinIO webhook without `queue_dir`, a store changed
while nothing listened) and records can stay `processing` when an event is lost on the way. A pass
compares the uploads bucket with the catalog and plans, oldest first:

- `missing`: an object with no live record (or only a tombstone older than the object), older than
  the grace period: its `object.created` again, filled from the object's stat. Counted as
  *unnotified*: no event of it ever reached the catalog.
- `stuck`: a record `processing` for longer than the stuck period (since its last write or repair):
  its `object.created` again, with the next repair generation; after `max_repairs` repairs it is
  `gave_up`: marked rejected, with a reason that says so.
- `gone`: a live record whose object is not in the bucket: its `object.removed`.

Event ids are a hash of (bucket, key, eTag, repair generation): a pass repeated before the catalog
has seen its events emits the same ids (consumers dedupe on source and id), while a record that gets
stuck again after a repair gets a new one. A pass emits at most `max_emits` events; the rest are
*deferred* to the next pass.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pipeline.events import ObjectCreated, ObjectRemoved, image_id, is_reserved_key
from pipeline.minio_codec import format_time
from shared.objectstore import ObjectInfo
from shared.settings import ReconcilePolicy

MISSING, STUCK, GONE, GAVE_UP = "missing", "stuck", "gone", "gave_up"
REASONS = (MISSING, STUCK, GONE, GAVE_UP)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Policy:
    grace: timedelta
    stuck: timedelta
    max_repairs: int
    max_emits: int

    @classmethod
    def of(cls, settings: ReconcilePolicy) -> Policy:
        return cls(
            timedelta(seconds=settings.grace_seconds),
            timedelta(seconds=settings.stuck_seconds),
            settings.max_repairs,
            settings.max_emits,
        )


@dataclass(frozen=True)
class Record:
    """What a pass needs of one catalog row (live, or a tombstone with `deleted_at`)."""

    key: str
    status: str  # processing, ready or rejected
    updated_at: datetime
    sequencer: str | None = None
    deleted_at: datetime | None = None
    generation: int = 0  # repairs so far
    repaired_at: datetime | None = None


@dataclass(frozen=True)
class Repair:
    reason: str
    image_id: str
    key: str
    generation: int  # the record's repair generation once this repair is done
    change: ObjectCreated | ObjectRemoved | None = None  # None: mark the record rejected (gave_up)
    event_id: str | None = None


@dataclass(frozen=True)
class Plan:
    repairs: tuple[Repair, ...] = ()
    unnotified: int = 0  # objects no event of which reached the catalog (deferred ones included)
    deferred: int = 0  # repairs over max_emits, left to the next pass
    counts: dict[str, int] = field(default_factory=dict)  # planned repairs per reason


def as_utc(moment: datetime) -> datetime:
    """SQLite gives naive datetimes back; every time the catalog stores is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def sequencer_of(moment: datetime) -> str:
    """A MinIO-style sequencer for a moment: UnixNano in hex."""
    return f"{(as_utc(moment) - EPOCH) // timedelta(microseconds=1) * 1000:X}"


def repair_id(bucket: str, key: str, etag: str, generation: int) -> str:
    material = json.dumps(["reconcile", bucket, key, etag, generation], ensure_ascii=False)
    return hashlib.sha256(material.encode()).hexdigest()[:32]


def _created(bucket: str, found: ObjectInfo, sequencer: str) -> ObjectCreated:
    return ObjectCreated(
        bucket,
        found.key,
        found.size,
        found.etag,
        found.content_type,
        dict(found.user_metadata),
        found.version_id,
        sequencer,
        "s3:ObjectCreated:Put",
        format_time(as_utc(found.last_modified)),
    )


def _object_repair(
    bucket: str, found: ObjectInfo, record: Record | None, policy: Policy, now: datetime
) -> Repair | None:
    """The repair an object in the bucket needs, if any."""
    key, modified, ident = found.key, as_utc(found.last_modified), image_id(bucket, found.key)
    tombstone = record is not None and record.deleted_at is not None
    if record is None or (tombstone and modified > as_utc(record.deleted_at or modified)):
        if now - modified < policy.grace:
            return None  # its notification may still be on the way
        generation = record.generation if record else 0
        change = _created(bucket, found, sequencer_of(modified))
        return Repair(MISSING, ident, key, generation, change, repair_id(bucket, key, found.etag, generation))
    if tombstone or record.status != "processing":
        return None
    last = max(as_utc(record.updated_at), as_utc(record.repaired_at or record.updated_at))
    if now - last < policy.stuck:
        return None
    if record.generation >= policy.max_repairs:
        return Repair(GAVE_UP, ident, key, record.generation)
    generation = record.generation + 1
    change = _created(bucket, found, record.sequencer or sequencer_of(modified))
    return Repair(STUCK, ident, key, generation, change, repair_id(bucket, key, found.etag, generation))


def plan(
    bucket: str,
    objects: Iterable[ObjectInfo],
    records: Iterable[Record],
    policy: Policy,
    now: datetime,
    listed_at: datetime,
) -> Plan:
    """The repairs of one pass. `records` were read before the bucket was listed (at `listed_at`), so
    a record whose object is not listed had its object removed; the removal's sequencer is
    `listed_at`, earlier than any object put after the listing began (whose creation outranks it)."""
    by_key = {r.key: r for r in records if not is_reserved_key(r.key)}
    listed = sorted(
        (o for o in objects if not is_reserved_key(o.key)), key=lambda o: (as_utc(o.last_modified), o.key)
    )
    emitting: list[Repair] = []
    given_up: list[Repair] = []
    for found in listed:
        repair = _object_repair(bucket, found, by_key.get(found.key), policy, now)
        if repair is not None:
            (given_up if repair.change is None else emitting).append(repair)
    present = {o.key for o in listed}
    for key, record in sorted(by_key.items()):
        if record.deleted_at is None and key not in present:
            removed = ObjectRemoved(bucket, key, None, sequencer_of(listed_at), "s3:ObjectRemoved:Delete",
                                    format_time(listed_at))  # fmt: skip
            ident = repair_id(bucket, key, record.sequencer or "", record.generation)
            emitting.append(Repair(GONE, image_id(bucket, key), key, record.generation, removed, ident))
    unnotified = sum(1 for r in emitting if r.reason == MISSING)
    chosen = emitting[: policy.max_emits] + given_up
    counts = {reason: sum(1 for r in chosen if r.reason == reason) for reason in REASONS}
    return Plan(tuple(chosen), unnotified, max(0, len(emitting) - policy.max_emits), counts)
