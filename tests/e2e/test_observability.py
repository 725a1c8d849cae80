"""Observability end to end through `datafrost dev`: one upload's journey shares one trace id."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared import tracing
from tests.e2e.test_pipeline import camera_jpeg, wait_done
from tests.support.platform import DevProcess
from tests.support.services import require_tool

PIPELINE = {"upload", "storage-events", "inspect", "thumbnail", "catalog"}


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[DevProcess]:
    platform = DevProcess(tmp_path / "data", "--keep-warm").start()
    yield platform
    platform.stop()


def test_one_upload_shares_one_trace_id_in_every_function_it_touched(dev: DevProcess) -> None:
    traceparent = tracing.new_traceparent()
    trace_id = tracing.trace_id(traceparent)
    headers = {"Content-Type": "image/jpeg", "traceparent": traceparent}
    response = dev.request("POST", "/upload", body=camera_jpeg(), headers=headers)
    assert response.status == 201, response.data
    the_id = json.loads(response.data)["id"]
    assert wait_done(dev, the_id)["status"] == "ready"

    lines = [line for line in dev.logs() if line.get("trace_id") == trace_id]
    assert {line["function"] for line in lines} >= PIPELINE, lines
    handled = [line for line in lines if line["message"] == "event handled"]
    assert {line["function"] for line in handled} >= {"inspect", "thumbnail", "catalog"}
    for line in handled:  # the documented fields, on every event a function handled
        assert {"time", "level", "event_id", "event_type", "event_source", "image_id"} <= set(line)
        assert line["image_id"] == the_id, json.dumps(line)
    # another upload without a traceparent starts its own trace: ids never leak between requests
    other = dev.request("POST", "/upload", body=camera_jpeg(), headers={"Content-Type": "image/jpeg"})
    other_id = json.loads(other.data)["id"]
    assert wait_done(dev, other_id)["status"] == "ready"
    other_traces = {line.get("trace_id") for line in dev.logs() if line.get("image_id") == other_id}
    assert trace_id not in other_traces and len(other_traces - {None}) == 1


def promtool_check(promtool: str, text: bytes, what: str) -> None:
    check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True)
    assert check.returncode == 0, f"{what}: {check.stdout.decode()} {check.stderr.decode()}"


def values(text: bytes) -> dict[str, dict[frozenset[tuple[str, str]], float]]:
    out: dict[str, dict[frozenset[tuple[str, str]], float]] = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            out.setdefault(s.name, {})[frozenset(s.labels.items())] = s.value
    return out


def test_every_metrics_endpoint_passes_promtool_and_the_gateway_aggregates_them(dev: DevProcess) -> None:
    promtool = require_tool("promtool", ".ci/install-promtool")
    response = dev.request("POST", "/upload", body=camera_jpeg(), headers={"Content-Type": "image/jpeg"})
    the_id = json.loads(response.data)["id"]
    assert wait_done(dev, the_id)["status"] == "ready"

    running = list(dev.functions())  # every function: asking for its /metrics starts an idle one
    assert set(running) >= PIPELINE | {"dead-letters", "event-display", "authz"}
    for name in running:
        own = dev.request("GET", f"/{name}/metrics")
        assert own.status == 200, name
        promtool_check(promtool, own.data, f"/{name}/metrics")
    aggregate = dev.request("GET", "/metrics")
    assert aggregate.status == 200
    promtool_check(promtool, aggregate.data, "the gateway's /metrics")

    found = values(aggregate.data)
    assert {dict(k)["process"] for k in found["process_cpu_seconds_total"]} >= {"gateway", *running}
    images = {dict(k)["status"]: v for k, v in found["datafrost_catalog_images"].items()}
    assert images == {"processing": 0.0, "ready": 1.0, "rejected": 0.0}
    starts = {dict(k)["function"] for k in found["datafrost_function_cold_starts_total"]}
    assert starts >= PIPELINE
    read = {dict(k)["function"]: v for k, v in found["datafrost_image_bytes_processed_total"].items()
            if dict(k)["direction"] == "read"}  # fmt: skip
    assert read["inspect"] == read["thumbnail"] == len(camera_jpeg())
    operations = {dict(k)["operation"] for k in found["datafrost_image_processing_duration_seconds_count"]}
    assert operations == {"inspect", "thumbnail"}
    depth = {dict(k)["trigger"]: v for k, v in found["datafrost_broker_queue_depth"].items()}
    assert "catalog-created" in depth and all(v >= 0 for v in depth.values())
    status = dev.cli("status")
    assert status.returncode == 0, status.stderr
    assert "images: processing 0, ready 1, rejected 0 (total 1)" in status.stdout
    catalog_row = next(line.split() for line in status.stdout.splitlines() if line.startswith("catalog "))
    assert catalog_row[:3] == ["catalog", "running", "1"]
    trigger_row = next(
        line.split() for line in status.stdout.splitlines() if line.startswith("catalog-created")
    )
    assert trigger_row[2] == "0" and int(trigger_row[3]) >= 1  # nothing waiting, delivered at least once
    handled = found["datafrost_function_events_total"]
    assert all(dict(k)["type"].startswith("io.datafrost.") or dict(k)["type"] == "other" for k in handled)
