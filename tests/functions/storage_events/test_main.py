"""storage-events served for real (functions-framework in its own process), posting into a real sink."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import urllib3

from eventing.cloudevent import CloudEvent
from functions.storage_events.rabbitmq_source import RABBITMQ_SOURCE_EVENT
from localplatform.processes import free_port
from pipeline.events import OBJECT_CREATED, OBJECT_REMOVED
from pipeline.minio_codec import ObjectRef, cloudevents_from_notification, notification_for
from shared.objectstore.local import LocalObjectStore
from tests.support.functions import ServedFunction
from tests.support.sink import Sink, status

TOKEN = "s3cr3t-webhook-token"
http = urllib3.PoolManager(retries=False)


class Served(ServedFunction):
    """storage-events with its K_SINK at `sink_url`; with auth off unless asked (the service role of
    /rabbitmq is checked by the function itself: test_the_rabbitmq_route_needs_the_service_role)."""

    def __init__(self, sink_url: str, token: str | None, data_dir: Path, auth: bool = False) -> None:
        env = {
            "K_SINK": sink_url,
            "DATAFROST_AUTH": "on" if auth else "off",
            "DATAFROST_DATA_DIR": str(data_dir),
        }
        env["DATAFROST_STORAGE_EVENTS_TOKEN"] = token or ""  # empty: no token required
        super().__init__("storage-events", env)

    def post(self, body: Any, headers: dict[str, str] | None = None) -> urllib3.BaseHTTPResponse:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return http.request(
            "POST", self.url + "/", body=raw, headers={"Content-Type": "application/json", **(headers or {})}
        )


@pytest.fixture(scope="module")
def broker() -> Iterator[Sink]:
    """One sink standing in for the broker ingress, shared by the module's servers (keys are unique)."""
    shared = Sink()
    yield shared
    shared.close()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data dir of the module's servers: their store holds the objects notified."""
    return tmp_path_factory.mktemp("storage-events")


@pytest.fixture(scope="module")
def store(data_dir: Path) -> LocalObjectStore:
    return LocalObjectStore(data_dir / "buckets")


@pytest.fixture(scope="module")
def served(broker: Sink, data_dir: Path) -> Iterator[Served]:
    server = Served(broker.url, token=None, data_dir=data_dir)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def guarded(broker: Sink, data_dir: Path) -> Iterator[Served]:
    server = Served(broker.url, token=TOKEN, data_dir=data_dir)
    yield server
    server.stop()


@pytest.fixture
def key() -> str:
    return f"2024/cat photo ({uuid4().hex[:8]}).jpg"


def arrived(broker: Sink, subject: str, count: int, timeout: float = 10.0) -> list[CloudEvent]:
    """The events about `subject` once `count` of them reached the broker."""
    deadline = time.monotonic() + timeout
    while True:
        events = [r.event for r in list(broker.received) if r.event.subject == subject]
        if len(events) >= count:
            return events
        assert time.monotonic() < deadline, f"{len(events)} events for {subject!r}, expected {count}"
        time.sleep(0.02)


def created(store: LocalObjectStore, key: str, sequencer: str = "17CE1A2B3C4D5E6F") -> dict[str, Any]:
    """MinIO's notification of `key`, written into the store first (only what it holds is published)."""
    moment = datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)
    info = store.put("uploads", key, b"jpeg", "image/jpeg", {"owner": "alice"})
    return notification_for("s3:ObjectCreated:Put", info, sequencer, event_time=moment)


def test_a_notification_reaches_the_broker_as_cloudevents(
    served: Served, broker: Sink, key: str, store: LocalObjectStore
) -> None:
    body = created(store, key)
    response = served.post(body)
    assert response.status == 200
    (event,) = arrived(broker, key, 1)
    expected = cloudevents_from_notification(body)[0]
    assert json.loads(response.data) == {"published": [expected.id], "skipped": []}
    assert (event.type, event.subject, event.get("bucket")) == (OBJECT_CREATED, key, "uploads")
    assert (event.id, event.source, event.get("time")) == (
        expected.id,
        "minio:uploads",
        "2024-05-06T07:08:09.123Z",
    )
    assert event.json()["user_metadata"] == {"owner": "alice"}


def test_a_redelivered_notification_has_the_same_id(
    served: Served, broker: Sink, key: str, store: LocalObjectStore
) -> None:
    body = created(store, key)
    assert served.post(body).status == 200
    assert served.post(body).status == 200
    store.delete("uploads", key)  # a removal is published once the object is gone
    removal = notification_for("s3:ObjectRemoved:Delete", ObjectRef("uploads", key), "17CE1A2B3C4D5E70")
    assert served.post(removal).status == 200
    first, again, removed = arrived(broker, key, 3)
    assert first.id == again.id != removed.id
    assert (first.type, removed.type) == (OBJECT_CREATED, OBJECT_REMOVED)


def test_ignored_event_names_publish_nothing(
    served: Served, broker: Sink, key: str, store: LocalObjectStore
) -> None:
    body = created(store, key)
    body["Records"][0]["eventName"] = body["EventName"] = "s3:ObjectCreated:PutTagging"
    response = served.post(body)
    assert response.status == 200 and json.loads(response.data) == {"published": [], "skipped": []}
    assert served.post(created(store, key)).status == 200  # a later event arrives: the ignored one never did
    (event,) = arrived(broker, key, 1)
    assert event.json()["event_name"] == "s3:ObjectCreated:Put"


def test_the_token_is_required_when_set(
    guarded: Served, broker: Sink, key: str, store: LocalObjectStore
) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": TOKEN},
        {"Authorization": f"Basic {TOKEN}"},
    ):
        response = guarded.post(created(store, key), headers)
        assert response.status == 401
        assert "error" in json.loads(response.data) and TOKEN not in response.data.decode()
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert guarded.post(created(store, key), {"Authorization": f"Bearer {TOKEN}"}).status == 200
    assert len(arrived(broker, key, 1)) == 1


def test_head_answers_200_for_minio_liveness(served: Served, guarded: Served) -> None:
    assert http.request("HEAD", served.url + "/").status == 200
    assert http.request("HEAD", guarded.url + "/").status == 200


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not a MinIO notification"),
        (b"\xff\xfe\x00", "not a MinIO notification"),
        ({"EventName": "s3:ObjectCreated:Put"}, "Records"),
        ({"Records": [{"eventName": "s3:ObjectCreated:Put"}]}, "s3.bucket.name"),
    ],
)
def test_a_malformed_body_is_400_with_the_reason(served: Served, body: Any, reason: str) -> None:
    response = served.post(body)
    assert response.status == 400 and reason in json.loads(response.data)["error"]


def test_other_methods_and_paths(served: Served) -> None:
    assert http.request("GET", served.url + "/").status == 405
    assert http.request("POST", served.url + "/other", body=b"{}").status == 404
    assert http.request("GET", served.url + "/readyz").status == 200


def test_a_broker_that_fails_makes_minio_retry(
    served: Served, broker: Sink, key: str, store: LocalObjectStore
) -> None:
    broker.answer = lambda event, n: status(500 if event.subject == key and n == 1 else 202)
    try:
        body = created(store, key)
        failed = served.post(body)
        assert failed.status == 503 and "error" in json.loads(failed.data)
        assert served.post(body).status == 200  # MinIO sends it again: the same id reaches the broker
        first, second = arrived(broker, key, 2)
        assert first.id == second.id
    finally:
        broker.answer = lambda event, n: status(204)


def source_event(notification: Any, event_type: str = RABBITMQ_SOURCE_EVENT) -> tuple[dict[str, str], bytes]:
    """What a RabbitmqSource POSTs for one AMQP message from MinIO: a binary-mode CloudEvent."""
    message_id = str(uuid4())
    headers = {
        "ce-specversion": "1.0",
        "ce-type": event_type,
        "ce-source": "/apis/v1/namespaces/datafrost/rabbitmqsources/minio-notifications#minio-notifications",
        "ce-id": message_id,
        "ce-subject": message_id,
        "ce-time": "2024-05-06T07:08:09.5Z",
        "Content-Type": "application/json",
    }
    return headers, json.dumps(notification).encode()


def test_a_rabbitmq_source_event_publishes_like_the_webhook(
    guarded: Served, broker: Sink, key: str, store: LocalObjectStore
) -> None:
    """No static token on this route (the gateway requires the service role; the source is in-cluster)."""
    body = created(store, key)
    headers, raw = source_event(body)
    response = http.request("POST", guarded.url + "/rabbitmq", body=raw, headers=headers)
    assert response.status == 200, response.data
    (event,) = arrived(broker, key, 1)
    assert json.loads(response.data) == {"published": [event.id], "skipped": []}
    assert event.id == cloudevents_from_notification(body)[0].id  # the webhook's id: dedupe works across both
    assert (event.type, event.get("bucket")) == (OBJECT_CREATED, "uploads")


@pytest.mark.parametrize(
    ("notification", "event_type", "reason"),
    [
        ({"Records": []}, "io.example.other", "expected a dev.knative.rabbitmq.event event"),
        (["not", "an", "object"], RABBITMQ_SOURCE_EVENT, "not a JSON object"),
        ({"EventName": "s3:ObjectCreated:Put"}, RABBITMQ_SOURCE_EVENT, "Records"),
    ],
)
def test_a_bad_rabbitmq_source_event_is_400(
    served: Served, notification: Any, event_type: str, reason: str
) -> None:
    headers, raw = source_event(notification, event_type)
    response = http.request("POST", served.url + "/rabbitmq", body=raw, headers=headers)
    assert response.status == 400 and reason in json.loads(response.data)["error"]


def test_the_rabbitmq_route_needs_a_cloudevent_by_post(
    served: Served, key: str, store: LocalObjectStore
) -> None:
    not_an_event = http.request(
        "POST", served.url + "/rabbitmq", body=json.dumps(created(store, key)).encode()
    )
    assert not_an_event.status == 400 and "specversion" in json.loads(not_an_event.data)["error"]
    assert http.request("GET", served.url + "/rabbitmq").status == 405


def test_the_rabbitmq_route_needs_the_service_role(broker: Sink, key: str, store: LocalObjectStore) -> None:
    server = Served(broker.url, token=None, data_dir=store.root.parent, auth=True)
    try:
        headers, raw = source_event(created(store, key))
        anonymous = http.request("POST", server.url + "/rabbitmq", body=raw, headers=headers)
        assert anonymous.status == 401 and "authentication required" in json.loads(anonymous.data)["error"]
        forged = {**headers, "Authorization": "Bearer not.a.token"}
        assert http.request("POST", server.url + "/rabbitmq", body=raw, headers=forged).status == 401
        assert (
            server.post(created(store, key)).status == 200
        )  # the webhook route stays public (MinIO's own token)
    finally:
        server.stop()


def test_an_unreachable_broker_is_503(key: str, store: LocalObjectStore) -> None:
    server = Served(f"http://127.0.0.1:{free_port()}/", token=None, data_dir=store.root.parent)
    try:
        assert server.post(created(store, key)).status == 503
    finally:
        server.stop()
