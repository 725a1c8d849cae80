"""Image decoding stays inside the function's memory limit, whatever the upload claims.

The attack: an 80 MP RGBA PNG of one colour is 0.31 MB and under the pixel limit, but took inspect to
917 MiB and thumbnail to 1,084 MiB, where Knative gives them 512 Mi: an OOM-kill loop on a cluster.
Decodes are now budgeted by the bytes they need (mode, bit depth, the decoder's own buffers and the
copies the processing holds) against DATAFROST_IMAGE_MEMORY_BYTES, and refused from the header when
they would not fit. Each bomb is delivered straight to a fresh function process, and to one real
`datafrost dev` upload, while its RSS is sampled every 20 ms.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import urllib3

from eventing.cloudevent import CloudEvent, new_event
from eventing.http_codec import parse_http, to_binary
from pipeline import events
from shared.objectstore import ObjectStore
from shared.objectstore.factory import open_store
from shared.settings import from_env
from tests.support.functions import ServedFunction
from tests.support.image_bombs import bomb
from tests.support.memory import MIB, PeakRss
from tests.support.platform import DevProcess

FUNCTION_MEMORY_LIMIT = 512 * MIB  # the image functions' limit in the Knative manifests (Resources)
REPLY_LIMIT = 1024 * 1024
OVER_BUDGET = "of memory to process, over this function's"
PROCESSED = {"inspect": events.IMAGE_ANALYZED, "thumbnail": events.IMAGE_THUMBNAILED}
# bomb -> what the functions answer: processed, or refused from the header as over the memory budget
OUTCOMES = {
    "rgba-png": "rejected",
    "rgba16-png": "rejected",
    "grey16-png": "processed",
    "cmyk-jpeg": "processed",
    "progressive-jpeg": "rejected",
    "palette-gif": "rejected",
    "float-tiff": "rejected",
    "webp": "rejected",
    "float-tiff-near-budget": "processed",  # the largest kind: processing it must fit the limit too
    "photo-jpeg-24mp": "processed",
    "rgba-png-12mp": "processed",
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("image-memory")


@pytest.fixture(scope="module")
def store(data_dir: Path) -> ObjectStore:
    objects = open_store(from_env({"DATAFROST_DATA_DIR": str(data_dir)}))
    for bucket in ("uploads", "variants"):
        objects.ensure_bucket(bucket)
    return objects


@pytest.fixture
def served(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[ServedFunction]:
    """A fresh process of the function named by the test's `function` parameter."""
    env = {"DATAFROST_DATA_DIR": str(data_dir), "DATAFROST_AUTH": "off"}
    function = ServedFunction(request.node.callspec.params["function"], env)
    yield function
    function.stop()


def created(store: ObjectStore, key: str, data: bytes) -> CloudEvent:
    store.put("uploads", key, data, "application/octet-stream")
    payload = events.ObjectCreated(bucket="uploads", key=key, size=len(data), etag="e", content_type="")
    return new_event(
        events.OBJECT_CREATED,
        "/storage-events",
        payload,
        id=key,
        subject=key,
        extensions={"bucket": "uploads"},
    )


@pytest.mark.parametrize("function", ["inspect", "thumbnail"])
@pytest.mark.parametrize("name", list(OUTCOMES))
def test_a_bomb_delivered_to_the_function_stays_under_its_memory_limit(
    name: str, function: str, served: ServedFunction, store: ObjectStore
) -> None:
    event = created(store, f"mallory/{name}-{function}", bomb(name))
    headers, body = to_binary(event)
    with PeakRss(served.proc.pid) as peak:
        response = urllib3.request("POST", served.url + "/", headers=headers, body=body, timeout=120)
    print(f"{name} {function}: peak RSS {peak.peak / MIB:.0f} MiB")
    assert served.proc.poll() is None, f"{function} died on {name}"
    assert response.status == 200, response.data
    (reply,) = parse_http(dict(response.headers), response.data, max_bytes=REPLY_LIMIT)
    if OUTCOMES[name] == "processed":
        assert reply.type == PROCESSED[function], reply.json()
    else:
        assert reply.type == events.IMAGE_REJECTED, reply.json()
        assert OVER_BUDGET in reply.json()["reason"], reply.json()
    assert peak.peak < FUNCTION_MEMORY_LIMIT, f"{name} took {function} to {peak.peak / MIB:.0f} MiB"


@pytest.mark.parametrize("function", ["inspect", "thumbnail"])
def test_images_delivered_at_once_are_processed_one_at_a_time_within_the_limit(
    function: str, served: ServedFunction, store: ObjectStore
) -> None:
    """The image functions take several events at once (parallelism 4); the memory budget is the
    process's, so four of the largest images that fit, delivered together, must still fit."""
    data = bomb("float-tiff-near-budget")
    deliveries = [created(store, f"mallory/at-once-{function}-{n}", data) for n in range(4)]
    answers: list[int] = []

    def deliver(event: CloudEvent) -> None:
        headers, body = to_binary(event)
        answers.append(
            urllib3.request("POST", served.url + "/", headers=headers, body=body, timeout=300).status
        )

    with PeakRss(served.proc.pid) as peak:
        senders = [threading.Thread(target=deliver, args=(event,)) for event in deliveries]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(300)
    assert answers == [200] * 4 and served.proc.poll() is None
    assert peak.peak < FUNCTION_MEMORY_LIMIT, f"4 at once took {function} to {peak.peak / MIB:.0f} MiB"


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevProcess]:
    platform = DevProcess(tmp_path_factory.mktemp("image-memory-dev") / "data", "--keep-warm").start()
    yield platform
    platform.stop()


def final_record(dev: DevProcess, image_id: str, timeout: float = 60.0) -> dict[str, object]:
    """The catalog's record once it is ready or rejected (it fails the test on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        status, record = dev.json("GET", f"/catalog/images/{image_id}")
        if status == 200 and record["status"] in ("ready", "rejected"):
            return dict(record)
        assert time.monotonic() < deadline, (status, record)
        time.sleep(0.1)


def handled_by(dev: DevProcess, image_id: str) -> set[str]:
    lines = dev.logs()
    return {
        line["function"]
        for line in lines
        if line.get("image_id") == image_id and line["message"] == "event handled"
    }


def test_the_issues_bomb_uploaded_through_the_gateway_is_rejected_within_the_limit(dev: DevProcess) -> None:
    """The 80 MP flat RGBA PNG through `POST /upload`: both functions answer, neither goes over 512 MiB."""
    for name in PROCESSED:
        dev.request("GET", f"/{name}/healthz", user=None)
    pids = {name: dev.functions()[name]["pid"] for name in PROCESSED}
    with PeakRss(pids["inspect"]) as inspect, PeakRss(pids["thumbnail"]) as thumbnail:
        response = dev.request(
            "POST", "/upload", body=bomb("rgba-png"), headers={"Content-Type": "image/png"}
        )
        assert response.status == 201, response.data
        image_id = json.loads(response.data)["id"]
        deadline = time.monotonic() + 120
        while not handled_by(dev, image_id) >= set(PROCESSED) and time.monotonic() < deadline:
            time.sleep(0.1)
    print(f"dev upload: inspect {inspect.peak / MIB:.0f} MiB, thumbnail {thumbnail.peak / MIB:.0f} MiB")
    assert handled_by(dev, image_id) >= set(PROCESSED)
    record = final_record(dev, image_id)  # the catalog takes the replies a moment later, through the broker
    assert record["status"] == "rejected", record
    assert OVER_BUDGET in record["reason"], record
    assert {name: dev.functions()[name]["pid"] for name in PROCESSED} == pids  # nothing was restarted
    assert inspect.peak < FUNCTION_MEMORY_LIMIT, inspect.peak / MIB
    assert thumbnail.peak < FUNCTION_MEMORY_LIMIT, thumbnail.peak / MIB
