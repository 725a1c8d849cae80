"""`datafrost dev` end to end: gateway routing, ingress answers, triggers, scale to zero, shutdown."""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from eventing.cloudevent import new_event
from eventing.http_codec import to_binary, to_structured
from tests.support.platform import DevProcess, process_alive
from tests.support.sink import Sink


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[DevProcess]:
    platform = DevProcess(tmp_path / "data", "--idle-seconds", "2", env={"DATAFROST_MAX_EVENT_BYTES": "4096"})
    platform.start()
    yield platform
    platform.stop()


def test_startup_table_lists_every_function_with_its_url(tmp_path: Path) -> None:
    platform = DevProcess(tmp_path / "data").start()
    out = platform.stop()
    assert f"DataFrost is running at {platform.url}" in out
    assert f"{platform.url}/dead-letters/" in out
    assert f"{platform.url}/event-display/" in out


def test_path_and_host_routing_reach_the_function(dev: DevProcess) -> None:
    by_path = dev.request("GET", "/event-display/healthz")
    by_host = dev.request("GET", "/healthz", headers={"Host": f"event-display.localhost:{dev.port}"})
    assert by_path.status == 200 and json.loads(by_path.data)["function"] == "event-display"
    assert by_host.status == 200 and json.loads(by_host.data)["function"] == "event-display"
    knative_style = dev.request("GET", "/healthz", headers={"Host": "event-display.datafrost.example.com"})
    assert knative_style.status == 200 and json.loads(knative_style.data)["function"] == "event-display"
    gateway = dev.request("GET", "/healthz", headers={"Host": f"127.0.0.1:{dev.port}"})
    assert json.loads(gateway.data) == {"status": "ok"}  # an address names no function


def test_the_gateway_serves_what_authz_checked_for_any_host(dev: DevProcess) -> None:
    """One host parser for routing and for the check: a host cannot make authz judge another route."""
    for host in ("storage-events.example.com", "upload.localhost", "authz.evil.example"):
        # authz judges /<function>/brokers/default (no such route), not the gateway's broker ingress
        answer = dev.request("POST", "/brokers/default", body=b"{}", headers={"Host": host}, user=None)
        function = host.split(".", 1)[0]
        assert answer.status == 404, host
        assert json.loads(answer.data) == {"error": f"no route for POST /{function}/brokers/default"}


def test_unknown_route_is_a_json_404(dev: DevProcess) -> None:
    response = dev.request("GET", "/no-such-function/x")
    assert response.status == 404
    assert "no route" in json.loads(response.data)["error"]


def test_ingress_accepts_binary_structured_and_batched_events(dev: DevProcess) -> None:
    event = new_event("io.test.ok", "tests", {"n": 1})
    headers, body = to_binary(event)
    assert dev.request("POST", "/brokers/default", headers=headers, body=body).status == 202
    headers, body = to_structured(event)
    assert dev.request("POST", "/brokers/default", headers=headers, body=body).status == 202
    batch = json.dumps([json.loads(to_structured(new_event("io.test.ok", "tests"))[1]) for _ in range(3)])
    headers = {"Content-Type": "application/cloudevents-batch+json"}
    assert dev.request("POST", "/brokers/default", headers=headers, body=batch).status == 202


@pytest.mark.parametrize(
    ("method", "headers", "body", "status", "reason"),
    [
        ("POST", {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "s"}, b"", 400, "'type' is missing"),
        (
            "POST",
            {"ce-specversion": "0.3", "ce-id": "1", "ce-source": "s", "ce-type": "t"},
            b"",
            400,
            "specversion",
        ),
        ("POST", {"Content-Type": "text/plain"}, b"hello", 400, "not a CloudEvent"),
        (
            "POST",
            {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "s", "ce-type": "t"},
            b"x" * 5000,
            413,
            "limit",
        ),
        ("GET", {}, b"", 405, "POST"),
    ],
    ids=["missing-type", "unknown-specversion", "not-a-cloudevent", "too-large", "wrong-method"],
)
def test_ingress_refuses_with_status_and_reason(
    dev: DevProcess, method: str, headers: dict[str, str], body: bytes, status: int, reason: str
) -> None:
    response = dev.request(method, "/brokers/default", headers=headers, body=body or None)
    assert response.status == status
    assert reason in json.loads(response.data)["error"]


def test_triggers_created_by_the_cli_deliver_and_survive_a_restart(tmp_path: Path, sink: Sink) -> None:
    data_dir = tmp_path / "data"
    first = DevProcess(data_dir).start()
    created = first.cli(
        "trigger", "create", "to-sink", "--filter", "type=io.test.ping", "--sink", sink.url + "/hook"
    )
    assert created.returncode == 0, created.stderr
    sent = first.cli("send", "--type", "io.test.ping", "--source", "tests", "--data", '{"n": 1}')
    assert sent.returncode == 0, sent.stderr
    assert first.cli("send", "--type", "io.test.other", "--source", "tests").returncode == 0
    (received,) = sink.wait_for(1)
    assert received.event.type == "io.test.ping" and received.event.json() == {"n": 1}
    assert received.path == "/hook"
    first.stop()

    second = DevProcess(data_dir).start()
    listed = second.cli("trigger", "list")
    assert "to-sink" in listed.stdout and "type=io.test.ping" in listed.stdout
    assert second.cli("send", "--type", "io.test.ping", "--source", "tests").returncode == 0
    sink.wait_for(2)
    deleted = second.cli("trigger", "delete", "to-sink")
    assert deleted.returncode == 0, deleted.stderr
    assert "to-sink" not in second.cli("trigger", "list").stdout
    second.stop()
    assert [r.event.type for r in sink.received] == ["io.test.ping", "io.test.ping"]


def test_cli_errors_are_one_line_and_nonzero(dev: DevProcess) -> None:
    bad_filter = dev.cli("trigger", "create", "t1", "--filter", "nonsense", "--sink", "http://127.0.0.1:1/")
    bad_name = dev.cli("trigger", "create", "Bad_Name", "--sink", "http://127.0.0.1:1/")
    missing = dev.cli("trigger", "delete", "never-made")
    for result in (bad_filter, bad_name, missing):
        assert result.returncode != 0
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "ATTRIBUTE=VALUE" in bad_filter.stderr
    assert "DNS label" in bad_name.stderr
    assert "no trigger never-made" in missing.stderr


def test_cli_reports_an_unreachable_platform_in_one_line(tmp_path: Path) -> None:
    platform = DevProcess(tmp_path)  # never started: nothing listens on its port
    result = platform.cli("send", "--type", "t", "--source", "s")
    assert result.returncode == 1
    assert result.stderr.startswith("datafrost: error: cannot reach") and len(result.stderr.splitlines()) == 1


def test_function_starts_on_first_request_and_stops_when_idle(dev: DevProcess) -> None:
    assert dev.functions()["event-display"]["running"] is False
    assert dev.request("GET", "/event-display/healthz").status == 200
    state = dev.functions()["event-display"]
    assert state["running"] is True and state["cold_starts"] == 1
    pid = state["pid"]
    deadline = time.monotonic() + 15
    while dev.functions()["event-display"]["running"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert dev.functions()["event-display"]["running"] is False
    assert not process_alive(pid)
    assert dev.request("GET", "/event-display/healthz").status == 200
    assert dev.functions()["event-display"]["cold_starts"] == 2


def test_keep_warm_never_stops_functions(tmp_path: Path) -> None:
    platform = DevProcess(tmp_path / "data", "--idle-seconds", "0.5", "--keep-warm").start()
    try:
        platform.request("GET", "/event-display/healthz")
        time.sleep(2)
        assert platform.functions()["event-display"]["running"] is True
    finally:
        platform.stop()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_shutdown_leaves_no_function_processes(tmp_path: Path, sig: int) -> None:
    platform = DevProcess(tmp_path / "data").start()
    platform.request("GET", "/event-display/healthz")
    platform.request("GET", "/dead-letters/healthz")
    functions = platform.functions()
    pids = [functions[name]["pid"] for name in ("event-display", "dead-letters")]
    assert all(pids)
    platform.stop(sig)
    assert platform.proc is not None and platform.proc.returncode == 0
    assert not [pid for pid in pids if process_alive(pid)]


def test_sigkill_of_the_runner_leaves_no_orphans(tmp_path: Path) -> None:
    platform = DevProcess(tmp_path / "data").start()
    platform.request("GET", "/event-display/healthz")
    platform.request("GET", "/dead-letters/healthz")
    functions = platform.functions()
    started = [(functions[name]["pid"], functions[name]["url"]) for name in ("event-display", "dead-letters")]
    platform.stop(signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(process_alive(pid) for pid, _ in started) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid, _ in started if process_alive(pid)]
    for _, url in started:  # their ports are free again
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", int(url.rsplit(":", 1)[1])))


def test_metrics_and_json_logs(dev: DevProcess, sink: Sink) -> None:
    assert dev.cli(
        "trigger", "create", "show", "--filter", "type=io.test.log", "--sink", dev.url + "/event-display/"
    )
    sent = dev.cli("send", "--type", "io.test.log", "--source", "tests", "--id", "log-1")
    assert sent.returncode == 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if any(line.get("event_id") == "log-1" for line in dev.logs()):
            break
        time.sleep(0.1)
    line = next(line for line in dev.logs() if line.get("event_id") == "log-1")
    assert line["function"] == "event-display" and line["event_type"] == "io.test.log"
    assert {"time", "level", "message"} <= set(line)

    aggregate = samples(dev.request("GET", "/metrics").data.decode())
    assert (
        aggregate[("datafrost_broker_events_received_total", (("broker", "default"), ("process", "gateway")))]
        >= 1
    )
    assert (
        aggregate[("datafrost_broker_events_delivered_total", (("process", "gateway"), ("trigger", "show")))]
        == 1
    )
    assert any(name == "datafrost_broker_delivery_duration_seconds_bucket" for name, _ in aggregate)
    own = samples(dev.request("GET", "/event-display/metrics").data.decode())
    # a type that is not DataFrost's own is counted as "other": label values stay bounded
    labels = (("function", "event-display"), ("outcome", "ok"), ("type", "other"))
    assert own[("datafrost_function_events_total", labels)] == 1
    in_aggregate = samples(dev.request("GET", "/metrics").data.decode())
    assert (
        in_aggregate[
            ("datafrost_function_events_total", (*labels[:2], ("process", "event-display"), labels[2]))
        ]
        == 1
    )


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Sample name and sorted labels -> value."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_dead_letters_are_kept_listed_and_replayed(dev: DevProcess, sink: Sink) -> None:
    from tests.support.sink import status

    sink.answer = lambda event, n: status(500, b"boom") if n == 1 else status(204)
    created = dev.cli(
        "trigger", "create", "flaky", "--filter", "type=io.test.flaky", "--sink", sink.url,
        "--retry", "0", "--dead-letter-sink", dev.url + "/dead-letters/",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert dev.cli("send", "--type", "io.test.flaky", "--source", "tests", "--id", "dl-1").returncode == 0
    sink.wait_for(1)
    deadline = time.monotonic() + 10
    letters: list[dict[str, object]] = []
    while not letters and time.monotonic() < deadline:
        letters = dev.json("GET", "/dead-letters/")[1]["dead_letters"]
        time.sleep(0.1)
    (letter,) = letters
    assert letter["event_id"] == "dl-1" and letter["code"] == 500 and letter["error"] == "boom"
    assert letter["destination"] == sink.url
    status_code, replay = dev.json("POST", f"/dead-letters/{letter['id']}/replay")
    assert status_code == 200 and replay["event_id"] == "dl-1"
    second = sink.wait_for(2)[1]
    assert second.event.id == "dl-1" and "knativeerrorcode" not in second.event.attributes


def test_several_platforms_in_one_process_share_the_queue_depth_gauge(tmp_path: Path) -> None:
    """The benchmark and in-process tests run more than one platform: metrics must not collide."""
    from prometheus_client import REGISTRY, generate_latest

    from localplatform.runner import DevOptions, DevPlatform

    platforms = [DevPlatform(DevOptions(port=0, data_dir=tmp_path / name)) for name in ("a", "b")]
    try:
        for platform in platforms:
            platform.start()
        depth = samples(generate_latest(REGISTRY).decode())
        triggers = {
            dict(labels)["trigger"] for name, labels in depth if name == "datafrost_broker_queue_depth"
        }
        assert "catalog-created" in triggers
    finally:
        for platform in platforms:
            platform.shutdown()
    after = samples(generate_latest(REGISTRY).decode())
    assert not any(name == "datafrost_broker_queue_depth" for name, _ in after)


def test_make_broker_defaults_to_the_durable_local_broker(tmp_path: Path) -> None:
    from localplatform.broker.durable import DurableBroker
    from localplatform.broker.memory import MemoryBroker
    from localplatform.runner import make_broker
    from shared.settings import from_env

    local = make_broker(from_env({}).broker_url, tmp_path, "mine")
    try:
        assert isinstance(local, DurableBroker)
        assert local.events.path == tmp_path / "broker" / "mine.sqlite3" and local.events.path.is_file()
    finally:
        local.close()
    memory = make_broker("memory", tmp_path)
    assert isinstance(memory, MemoryBroker)
    memory.close()
    with pytest.raises(ValueError, match="'local', 'memory' or an amqp:// URL"):
        make_broker("redis://x", tmp_path)
    with pytest.raises(ValueError, match="broker name"):
        make_broker("local", tmp_path, "../escape")
