"""The reconciler's plan, table by table: what a pass repairs from a listing and the catalog's rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from functions.catalog.reconcile import (
    GAVE_UP,
    GONE,
    MISSING,
    STUCK,
    Policy,
    Record,
    plan,
    repair_id,
    sequencer_of,
)
from pipeline.events import ObjectCreated, ObjectRemoved, image_id
from shared.objectstore import ObjectInfo

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
LISTED_AT = NOW - timedelta(seconds=1)
POLICY = Policy(grace=timedelta(minutes=2), stuck=timedelta(minutes=15), max_repairs=3, max_emits=100)
BUCKET = "uploads"


def obj(key: str, age_minutes: float = 60, etag: str = "e1") -> ObjectInfo:
    modified = NOW - timedelta(minutes=age_minutes)
    return ObjectInfo(BUCKET, key, 10, etag, "image/png", modified, {"owner": "ann"})


def rec(key: str, status: str = "ready", idle_minutes: float = 60, **more: object) -> Record:
    return Record(key, status, NOW - timedelta(minutes=idle_minutes), **more)  # type: ignore[arg-type]


def reasons(objects: list[ObjectInfo], records: list[Record]) -> list[tuple[str, str]]:
    return [(r.reason, r.key) for r in plan(BUCKET, objects, records, POLICY, NOW, LISTED_AT).repairs]


@pytest.mark.parametrize(
    ("objects", "records", "expected"),
    [
        pytest.param([obj("a/1.png")], [rec("a/1.png")], [], id="in step: nothing"),
        pytest.param([obj("a/1.png")], [], [(MISSING, "a/1.png")], id="no record: missing"),
        pytest.param([obj("a/1.png", age_minutes=1)], [], [], id="younger than the grace: in flight"),
        pytest.param([], [rec("a/1.png")], [(GONE, "a/1.png")], id="object gone: removed"),
        pytest.param([], [rec("a/1.png", deleted_at=NOW - timedelta(hours=1))], [], id="tombstone alone"),
        pytest.param(
            [obj("a/1.png", age_minutes=30)],
            [rec("a/1.png", deleted_at=NOW - timedelta(hours=1))],
            [(MISSING, "a/1.png")],
            id="uploaded again after its deletion",
        ),
        pytest.param(
            [obj("a/1.png", age_minutes=90)],
            [rec("a/1.png", deleted_at=NOW - timedelta(hours=1))],
            [],
            id="tombstone newer than the object: the catalog decided",
        ),
        pytest.param([obj("a/1.png")], [rec("a/1.png", "processing", 5)], [], id="processing, not yet stuck"),
        pytest.param(
            [obj("a/1.png")], [rec("a/1.png", "processing", 20)], [(STUCK, "a/1.png")], id="stuck: re-emitted"
        ),
        pytest.param(
            [obj("a/1.png")],
            [rec("a/1.png", "processing", 60, generation=1, repaired_at=NOW - timedelta(minutes=5))],
            [],
            id="repaired recently: not stuck again yet",
        ),
        pytest.param(
            [obj("a/1.png")],
            [rec("a/1.png", "processing", 60, generation=3, repaired_at=NOW - timedelta(minutes=20))],
            [(GAVE_UP, "a/1.png")],
            id="stuck after max repairs: rejected",
        ),
        pytest.param([obj("a/1.png")], [rec("a/1.png", "rejected", 600)], [], id="rejected is final"),
        pytest.param([], [rec("a/1.png", "processing", 60)], [(GONE, "a/1.png")], id="stuck and gone"),
        pytest.param([obj(".datafrost/probe/x")], [], [], id="reserved prefix: never an image"),
        pytest.param(
            [obj("b", age_minutes=10), obj("a", age_minutes=50)],
            [rec("c")],
            [(MISSING, "a"), (MISSING, "b"), (GONE, "c")],
            id="oldest first, removals last",
        ),
    ],
)
def test_what_a_pass_repairs(
    objects: list[ObjectInfo], records: list[Record], expected: list[tuple[str, str]]
) -> None:
    assert reasons(objects, records) == expected


def test_a_missing_object_is_announced_as_storage_events_would_from_its_stat() -> None:
    found = obj("ann/1.png", age_minutes=30)
    (repair,) = plan(BUCKET, [found], [], POLICY, NOW, LISTED_AT).repairs
    assert repair.image_id == image_id(BUCKET, "ann/1.png")
    assert repair.change == ObjectCreated(
        BUCKET, "ann/1.png", 10, "e1", "image/png", {"owner": "ann"}, None,
        sequencer_of(found.last_modified), "s3:ObjectCreated:Put", "2026-12-02T11:30:00.000Z",
    )  # fmt: skip
    assert int(repair.change.sequencer, 16) == int(found.last_modified.timestamp()) * 10**9


def test_a_removal_is_ordered_before_anything_put_after_the_listing_began() -> None:
    (repair,) = plan(BUCKET, [], [rec("a", sequencer="10")], POLICY, NOW, LISTED_AT).repairs
    assert isinstance(repair.change, ObjectRemoved)
    assert repair.change.sequencer == sequencer_of(LISTED_AT)
    assert int(repair.change.sequencer, 16) < int(sequencer_of(LISTED_AT + timedelta(microseconds=1)), 16)


def test_ids_repeat_across_passes_and_change_with_each_repair_generation() -> None:
    stuck = rec("a", "processing", 60, sequencer="AB")
    first = plan(BUCKET, [obj("a")], [stuck], POLICY, NOW, LISTED_AT).repairs[0]
    again = plan(BUCKET, [obj("a")], [stuck], POLICY, NOW, LISTED_AT).repairs[0]
    assert first.event_id == again.event_id == repair_id(BUCKET, "a", "e1", 1)
    assert first.generation == 1 and isinstance(first.change, ObjectCreated)
    assert first.change.sequencer == "AB"  # the catalogued version's: its order is unchanged
    later = rec("a", "processing", 60, sequencer="AB", generation=1, repaired_at=NOW - timedelta(hours=1))
    second = plan(BUCKET, [obj("a")], [later], POLICY, NOW, LISTED_AT).repairs[0]
    assert second.generation == 2 and second.event_id != first.event_id
    assert repair_id(BUCKET, "a", "e2", 1) != first.event_id  # another version of the object


def test_a_pass_emits_at_most_max_emits_and_counts_the_rest_as_deferred() -> None:
    objects = [obj(f"k{i}", age_minutes=60 - i) for i in range(5)]
    given_up = rec("z", "processing", 60, generation=3, repaired_at=NOW - timedelta(hours=1))
    small = Policy(POLICY.grace, POLICY.stuck, POLICY.max_repairs, max_emits=2)
    planned = plan(BUCKET, [*objects, obj("z")], [given_up], small, NOW, LISTED_AT)
    assert [(r.reason, r.key) for r in planned.repairs] == [(MISSING, "k0"), (MISSING, "k1"), (GAVE_UP, "z")]
    assert planned.deferred == 3 and planned.unnotified == 5
    assert planned.counts == {MISSING: 2, STUCK: 0, GONE: 0, GAVE_UP: 1}


def test_naive_database_times_are_utc() -> None:
    naive = Record("a", "processing", (NOW - timedelta(minutes=20)).replace(tzinfo=None))
    assert reasons([obj("a")], [naive]) == [(STUCK, "a")]
