"""The image's func entry, served by func's own Python middleware (func-python) as `func build` runs it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import urllib3

from function.func import call_wsgi, new, wsgi_environ
from pipeline.minio_codec import notification_for
from shared.objectstore.local import LocalObjectStore
from tests.support.functions import FuncServed
from tests.support.sink import Sink

http = urllib3.PoolManager(retries=False)


@pytest.fixture(scope="module")
def broker() -> Iterator[Sink]:
    sink = Sink()
    yield sink
    sink.close()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("func")


@pytest.fixture(scope="module")
def served(broker: Sink, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """storage-events as its Knative Service runs it: FUNCTION_SOURCE relative, K_SINK from the binding."""
    env = {"K_SINK": broker.url, "DATAFROST_DATA_DIR": str(data_dir)}
    function = FuncServed("storage-events", env, tmp_path_factory.mktemp("log") / "func.log")
    yield function.url
    function.stop()


def test_func_health_and_the_functions_own_routes(served: str) -> None:
    assert http.request("GET", served + "/health/liveness").status == 200
    assert http.request("GET", served + "/readyz").status == 200
    assert http.request("HEAD", served + "/").status == 200
    wrong = http.request("GET", served + "/")
    assert wrong.status == 405 and "error" in json.loads(wrong.data)


def test_a_notification_through_the_func_entry_reaches_the_broker(
    served: str, broker: Sink, data_dir: Path
) -> None:
    key = "func/a b+c.jpg"
    info = LocalObjectStore(data_dir / "buckets").put("uploads", key, b"data", "image/jpeg")
    body = notification_for(
        "s3:ObjectCreated:Put", info, "1A"
    )  # storage-events publishes what the store holds
    response = http.request(
        "POST", served + "/", body=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    assert response.status == 200, response.data
    (published,) = json.loads(response.data)["published"]
    deadline = time.monotonic() + 10
    while not any(r.event.id == published for r in list(broker.received)):
        assert time.monotonic() < deadline, "the event never reached the broker"
        time.sleep(0.02)
    event = next(r.event for r in broker.received if r.event.id == published)
    assert (event.subject, event.get("bucket")) == (key, "uploads")


def test_not_ready_until_started() -> None:
    instance = new()
    assert instance.ready() == (False, "function not loaded")
    assert instance.alive() == (True, "OK")


def test_the_wsgi_environ_keeps_raw_paths_queries_and_repeated_headers() -> None:
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/images/a b/é",
        "raw_path": b"/images/a%20b/%C3%A9",
        "query_string": b"owner=alice&limit=2",
        "headers": [
            (b"x-tag", b"one"),
            (b"x-tag", b"two"),
            (b"content-type", b"text/plain"),
            (b"content-length", b"99"),
        ],
        "server": ("127.0.0.1", 8080),
        "client": ("10.0.0.7", 50000),
    }
    environ = wsgi_environ(scope, b"hello")
    assert environ["PATH_INFO"].encode("latin-1").decode("utf-8") == "/images/a b/é"  # PEP 3333's form
    assert (environ["RAW_URI"], environ["QUERY_STRING"]) == ("/images/a%20b/%C3%A9", "owner=alice&limit=2")
    assert (environ["HTTP_X_TAG"], environ["CONTENT_TYPE"], environ["CONTENT_LENGTH"]) == (
        "one,two",
        "text/plain",
        "5",
    )
    assert environ["wsgi.input"].read() == b"hello" and environ["REMOTE_ADDR"] == "10.0.0.7"


def test_call_wsgi_collects_status_headers_and_body() -> None:
    def app(environ: dict[str, object], start_response: object) -> list[bytes]:
        start_response("201 Created", [("Content-Type", "application/json")])  # type: ignore[operator]
        return [b'{"ok":', b" true}"]

    assert call_wsgi(app, {}) == (201, [("Content-Type", "application/json")], b'{"ok": true}')
