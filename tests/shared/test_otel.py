"""Optional OpenTelemetry export: a function process sends its spans to a real OTLP/HTTP receiver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import urllib3
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from localplatform.processes import free_port
from pipeline.minio_codec import notification_for
from shared import tracing
from shared.objectstore.local import LocalObjectStore
from tests.support.sink import Sink

http = urllib3.PoolManager(retries=False)


class Receiver:
    """An OTLP/HTTP endpoint on loopback that keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        spans = self.spans

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                for resource in request.resource_spans:
                    for scope in resource.scope_spans:
                        spans.extend(scope.spans)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def named(self, name: str, timeout: float = 15.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [s for s in list(self.spans) if s.name == name]
            if found:
                return found[0]
            time.sleep(0.05)
        raise AssertionError(f"no span {name!r}; got {[s.name for s in self.spans]}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def test_each_hop_is_a_span_and_the_published_event_is_its_child(receiver: Receiver, tmp_path: Path) -> None:
    sink = Sink()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATAFROST_", "OTEL_"))}
    env.update(K_SINK=sink.url, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, OTEL_BSP_SCHEDULE_DELAY="50")
    env.update(DATAFROST_DATA_DIR=str(tmp_path))  # storage-events publishes what its store holds
    proc = subprocess.Popen(
        [sys.executable, "-m", "localplatform.serve", "storage-events", str(port)], env=env
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if http.request("GET", url + "/healthz", timeout=1).status == 200:
                    break
            except urllib3.exceptions.HTTPError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        caller = tracing.new_traceparent()
        info = LocalObjectStore(tmp_path / "buckets").put("uploads", "otel/a.jpg", b"data", "image/jpeg")
        body = json.dumps(notification_for("s3:ObjectCreated:Put", info, "1B")).encode()
        answer = http.request("POST", url + "/", body=body, headers={"traceparent": caller})
        assert answer.status == 200, answer.data

        trace_id, caller_span, _ = tracing.parse(caller) or ("", "", "")
        request_span = receiver.named("storage-events POST")
        publish_span = receiver.named("publish io.datafrost.object.created")
        assert request_span.trace_id.hex() == publish_span.trace_id.hex() == trace_id
        assert request_span.parent_span_id.hex() == caller_span
        assert publish_span.parent_span_id == request_span.span_id
        (received,) = [r.event for r in sink.received]
        assert tracing.parse(received.get("traceparent"))[:2] == (trace_id, publish_span.span_id.hex())
    finally:
        proc.terminate()
        proc.wait(10)
        sink.close()
