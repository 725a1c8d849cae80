"""MinIO notification decoding, against envelopes shaped exactly as MinIO sends them."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from eventing.validation import canonical_attributes
from pipeline.events import OBJECT_CREATED, OBJECT_REMOVED, ObjectCreated, ObjectRemoved, payload
from pipeline.minio_codec import (
    ObjectRef,
    cloudevents_from_notification,
    encode_key,
    event_id,
    notification_for,
)
from shared.objectstore import ObjectInfo

BUCKET = "uploads"


def record(
    name: str = "s3:ObjectCreated:Put",
    key: str = "photo.jpg",
    *,
    time: str = "2024-05-06T07:08:09.123Z",
    removed: bool = False,
    version: str | None = None,
    sequencer: str = "17CE1A2B3C4D5E6F",
    bucket: str = BUCKET,
) -> dict[str, Any]:
    """One record as MinIO's eventArgs.ToEvent builds it (removals: no size, eTag, metadata)."""
    obj: dict[str, Any] = {"key": key, "sequencer": sequencer}
    if not removed:
        obj.update(
            size=1234,
            eTag="d41d8cd98f00b204e9800998ecf8427e",
            contentType="image/jpeg",
            userMetadata={"content-type": "image/jpeg", "X-Amz-Meta-Owner": "alice"},
        )
    if version:
        obj["versionId"] = version
    return {
        "eventVersion": "2.0",
        "eventSource": "minio:s3",
        "awsRegion": "",
        "eventTime": time,
        "eventName": name,
        "userIdentity": {"principalId": "minioadmin"},
        "requestParameters": {"principalId": "minioadmin", "region": "", "sourceIPAddress": "10.0.0.9"},
        "responseElements": {"x-amz-id-2": "dd9025bab4ad464b", "x-amz-request-id": "17CE1A2B3C4D5E6F"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "Config",
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"principalId": "minioadmin"},
                "arn": f"arn:aws:s3:::{bucket}",
            },
            "object": obj,
        },
        "source": {"host": "10.0.0.9", "port": "", "userAgent": "MinIO (linux; amd64) minio-go/v7.0.70"},
    }


def envelope(*records: dict[str, Any]) -> dict[str, Any]:
    first = records[0]
    return {"EventName": first["eventName"], "Key": f"{BUCKET}/decoded", "Records": list(records)}


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        ("photo.jpg", "photo.jpg"),
        ("holiday+2024%2Fday+one.jpg", "holiday 2024/day one.jpg"),
        ("a%2Bb.jpg", "a+b.jpg"),
        ("cat+%281%29.jpg", "cat (1).jpg"),
        ("%C3%BCber%2F%E6%97%A5%E6%9C%AC.png", "über/日本.png"),
        ("a%2Fb%2Fc%2Fd%2Fdeep.webp", "a/b/c/d/deep.webp"),
        ("a/b/not-escaped.jpg", "a/b/not-escaped.jpg"),
    ],
)
def test_keys_are_form_decoded(encoded: str, decoded: str) -> None:
    (event,) = cloudevents_from_notification(envelope(record(key=encoded)))
    assert event.subject == decoded
    assert event.json()["key"] == decoded
    if "/" not in encoded:  # MinIO (Go's url.QueryEscape) escapes '/': so does encode_key
        assert encode_key(decoded) == encoded


def test_a_created_record_becomes_object_created() -> None:
    (event,) = cloudevents_from_notification(envelope(record(version="v-1")))
    assert event.type == OBJECT_CREATED
    assert event.source == "minio:uploads"
    assert event.get("bucket") == BUCKET
    assert event.get("time") == "2024-05-06T07:08:09.123Z"
    assert event.datacontenttype == "application/json"
    data = payload(ObjectCreated, event.json())
    assert data == ObjectCreated(
        bucket=BUCKET,
        key="photo.jpg",
        size=1234,
        etag="d41d8cd98f00b204e9800998ecf8427e",
        content_type="image/jpeg",
        user_metadata={"owner": "alice"},
        version_id="v-1",
        sequencer="17CE1A2B3C4D5E6F",
        event_name="s3:ObjectCreated:Put",
        event_time="2024-05-06T07:08:09.123Z",
    )
    canonical_attributes(event.attributes, from_json=False)  # a valid CloudEvent, strictly


@pytest.mark.parametrize(
    "name",
    [
        "s3:ObjectCreated:Put",
        "s3:ObjectCreated:Post",
        "s3:ObjectCreated:Copy",
        "s3:ObjectCreated:CompleteMultipartUpload",
    ],
)
def test_every_write_is_a_creation(name: str) -> None:
    (event,) = cloudevents_from_notification(envelope(record(name)))
    assert event.type == OBJECT_CREATED and event.json()["event_name"] == name


@pytest.mark.parametrize(
    "name",
    [
        "s3:ObjectCreated:PutTagging",
        "s3:ObjectCreated:DeleteTagging",
        "s3:ObjectCreated:PutRetention",
        "s3:ObjectCreated:PutLegalHold",
        "s3:ObjectAccessed:Get",
        "s3:ObjectAccessed:Head",
        "s3:ObjectRemoved:NoOP",
        "s3:ObjectRestore:Completed",
        "s3:Replication:OperationCompletedReplication",
        "s3:Scanner:ManyVersions",
        "s3:BucketCreated:*",
    ],
)
def test_events_that_write_no_bytes_are_ignored(name: str) -> None:
    assert cloudevents_from_notification(envelope(record(name, removed="Removed" in name))) == []


@pytest.mark.parametrize(
    "name",
    ["s3:ObjectRemoved:Delete", "s3:ObjectRemoved:DeleteMarkerCreated", "s3:ObjectRemoved:DeleteAllVersions"],
)
def test_removals_without_size_or_etag(name: str) -> None:
    (event,) = cloudevents_from_notification(envelope(record(name, "old+one.jpg", removed=True)))
    assert event.type == OBJECT_REMOVED and event.subject == "old one.jpg"
    assert payload(ObjectRemoved, event.json()) == ObjectRemoved(
        BUCKET, "old one.jpg", None, "17CE1A2B3C4D5E6F", name, "2024-05-06T07:08:09.123Z"
    )


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("2024-05-06T07:08:09.123Z", "2024-05-06T07:08:09.123Z"),
        ("2019-10-22T09:27:27Z", "2019-10-22T09:27:27.000Z"),
        ("2024-05-06T07:08:09.123456789Z", "2024-05-06T07:08:09.123Z"),
        ("2024-05-06T09:08:09.5+02:00", "2024-05-06T07:08:09.500Z"),
    ],
)
def test_event_times_with_and_without_milliseconds(raw: str, normalised: str) -> None:
    (event,) = cloudevents_from_notification(envelope(record(time=raw)))
    assert event.get("time") == normalised == event.json()["event_time"]


def test_a_zero_byte_object_has_no_size_field() -> None:
    rec = record()
    del rec["s3"]["object"]["size"]
    (event,) = cloudevents_from_notification(envelope(rec))
    assert event.json()["size"] == 0


def test_the_same_notification_twice_gives_the_same_id() -> None:
    body = json.dumps(envelope(record()))
    first = cloudevents_from_notification(json.loads(body))
    again = cloudevents_from_notification(json.loads(body))
    assert [e.id for e in first] == [e.id for e in again]
    assert first[0].id == event_id(
        BUCKET, "photo.jpg", "d41d8cd98f00b204e9800998ecf8427e", "17CE1A2B3C4D5E6F", "s3:ObjectCreated:Put"
    )


def test_ids_differ_by_every_identifying_field() -> None:
    variants = [
        record(),
        record(key="other.jpg"),
        record(bucket="other-bucket"),
        record(version="v2"),
        record(sequencer="17CE1A2B3C4D5E70"),
        record("s3:ObjectCreated:Copy"),
        record("s3:ObjectRemoved:Delete", removed=True),
    ]
    ids = {cloudevents_from_notification(envelope(r))[0].id for r in variants}
    assert len(ids) == len(variants)


def test_multiple_records_in_order() -> None:
    body = envelope(
        record(key="a.jpg"),
        record("s3:ObjectCreated:PutTagging", key="b.jpg"),
        record("s3:ObjectRemoved:Delete", key="c.jpg", removed=True),
    )
    events = cloudevents_from_notification(body)
    assert [(e.type, e.subject) for e in events] == [(OBJECT_CREATED, "a.jpg"), (OBJECT_REMOVED, "c.jpg")]


def test_a_key_a_cloudevent_string_cannot_hold_goes_in_data_only() -> None:
    (event,) = cloudevents_from_notification(envelope(record(key="next%C2%85line.jpg")))  # U+0085, C1
    assert event.subject is None and event.json()["key"] == "next\x85line.jpg"
    canonical_attributes(event.attributes, from_json=False)


def _broken(path: str, value: Any) -> dict[str, Any]:
    body = envelope(record())
    target = body["Records"][0]
    *parents, last = path.split(".")
    for name in parents:
        target = target[name]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return body


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ([], "JSON object"),
        ({"EventName": "s3:ObjectCreated:Put"}, "Records"),
        ({"Records": {"not": "a list"}}, "Records"),
        ({"Records": ["text"]}, "Records\\[0\\]"),
        (_broken("eventName", KeyError), "eventName"),
        (_broken("s3.bucket.name", ""), "s3.bucket.name"),
        (_broken("s3.object.key", KeyError), "s3.object.key"),
        (_broken("s3.object.size", "12"), "s3.object.size"),
        (_broken("s3.object.size", -1), "negative"),
        (_broken("s3", None), "s3.bucket.name"),
        (_broken("eventTime", "yesterday"), "eventTime"),
        (_broken("eventTime", "2024-13-45T07:08:09Z"), "eventTime"),
        (_broken("s3.object.userMetadata", ["x"]), "userMetadata"),
    ],
)
def test_malformed_envelopes_are_rejected(body: Any, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        cloudevents_from_notification(body)


def test_round_trip_from_notification_for() -> None:
    moment = datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)
    info = ObjectInfo(BUCKET, "trip/a b+c (1)/ü.jpg", 42, "abc123", "image/jpeg", moment, {"owner": "bob"})
    created = notification_for("s3:ObjectCreated:Put", info, "17CE", event_time=moment)
    assert created["Key"] == f"{BUCKET}/trip/a b+c (1)/ü.jpg"
    assert created["Records"][0]["s3"]["object"]["key"] == "trip%2Fa+b%2Bc+%281%29%2F%C3%BC.jpg"
    assert created["Records"][0]["s3"]["object"]["userMetadata"] == {
        "content-type": "image/jpeg",
        "X-Amz-Meta-Owner": "bob",
    }
    (event,) = cloudevents_from_notification(copy.deepcopy(created))
    data = payload(ObjectCreated, event.json())
    assert (data.key, data.size, data.etag, data.content_type) == (info.key, 42, "abc123", "image/jpeg")
    assert (data.user_metadata, data.sequencer, event.get("time")) == (
        {"owner": "bob"},
        "17CE",
        "2024-05-06T07:08:09.123Z",
    )

    removed = notification_for(
        "s3:ObjectRemoved:Delete", ObjectRef(BUCKET, info.key), "17CF", event_time=moment
    )
    assert set(removed["Records"][0]["s3"]["object"]) == {"key", "sequencer"}
    (gone,) = cloudevents_from_notification(removed)
    assert (gone.type, gone.subject, gone.json()["sequencer"]) == (OBJECT_REMOVED, info.key, "17CF")


def test_notification_for_a_write_needs_the_object_info() -> None:
    with pytest.raises(TypeError):
        notification_for("s3:ObjectCreated:Put", ObjectRef(BUCKET, "a.jpg"), "1")
