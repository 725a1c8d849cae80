"""Observability end to end through `datafrost dev`: one upload's journey shares one trace id."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared import tracing
from tests.e2e.test_pipeline import camera_jpeg, wait_done
from tests.support.platform import DevProcess

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
