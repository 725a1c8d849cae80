"""A trigger made with `datafrost trigger create` keeps delivering across an immediate restart
(issue 12 item 3): the cluster-local listener re-binds its port although the old one's connections wait
in TIME-WAIT, and a sink on this platform is stored as a ref to its function (Knative's
`{"ref": ..., "uri": ...}`), resolved to the current address at start; old files holding URLs load too.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import urllib3

from localplatform.processes import free_port
from tests.support.platform import DevProcess

TYPE = "io.datafrost.test.restart"


def send(dev: DevProcess) -> str:
    event_id = str(uuid.uuid4())
    sent = dev.cli("send", "--type", TYPE, "--source", "tests", "--id", event_id, "--data", '{"n": 1}')
    assert sent.returncode == 0, sent.stderr
    return event_id


def displayed(dev: DevProcess, event_id: str, timeout: float = 30.0) -> dict[str, object]:
    """The event as event-display lists it (`GET /event-display/events`), once it arrives."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = dev.json("GET", "/event-display/events")
        assert status == 200, body
        found = [e for e in body["events"] if e["attributes"]["id"] == event_id]
        if found:
            return dict(found[0])
        time.sleep(0.1)
    raise AssertionError(f"event {event_id} never reached event-display")


def test_a_cli_trigger_delivers_after_an_immediate_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = DevProcess(data_dir).start()
    created = first.cli(
        "trigger", "create", "show", "--filter", f"type={TYPE}", "--sink", first.url + "/event-display/"
    )
    assert created.returncode == 0, created.stderr
    displayed(first, send(first))
    port = (data_dir / "internal-port").read_text()
    # connections the platform closes itself (at shutdown) leave its port's side in TIME-WAIT
    held = urllib3.PoolManager(retries=False)
    assert held.request("GET", f"http://127.0.0.1:{port}/healthz").status == 200
    first.stop()

    second = DevProcess(data_dir).start()  # at once, on the same data dir (and another public port)
    try:
        assert (data_dir / "internal-port").read_text() == port
        event = displayed(second, send(second))
        assert event["attributes"]["type"] == TYPE  # type: ignore[index]
        listed = second.cli("trigger", "list")
        assert listed.returncode == 0, listed.stderr
        row = next(line.split() for line in listed.stdout.splitlines() if line.startswith("show "))
        assert row[2] == "ksvc:event-display"
    finally:
        second.stop()
        held.clear()
    stored = json.loads((data_dir / "triggers.json").read_text())["triggers"]
    assert stored[0]["subscriber"] == {
        "ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "event-display"},
        "uri": "/",
    }


def test_a_trigger_stored_with_an_old_port_is_read_as_its_function(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    old = free_port()
    (data_dir / "internal-port").write_text("0")  # not a usable port: a new one is chosen
    unknown = {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "gone"}, "uri": "/"}
    entries = [
        {"name": "old-url", "subscriber": f"http://127.0.0.1:{old}/event-display/", "filter": {"type": TYPE}},
        {"name": "unknown-ref", "subscriber": unknown, "filter": {"type": TYPE}},
    ]
    (data_dir / "triggers.json").write_text(json.dumps({"triggers": entries}))
    dev = DevProcess(data_dir).start()
    try:
        assert (data_dir / "internal-port").read_text() not in ("0", str(old))
        displayed(dev, send(dev))
        logged = [line for line in dev.logs() if "unknown-ref" in line.get("message", "")]
        assert logged and "was not started" in logged[0]["message"]
    finally:
        dev.stop()
