"""`datafrost status`: the rendering (the three gateway answers in, the summary out), and against a real
`datafrost dev`: it starts nothing, says the same twice, and shows a stopped catalog's last counts."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from cli.status import render, sums
from tests.support import images
from tests.support.platform import DevProcess, dev_token_headers

METRICS = """# TYPE datafrost_broker_queue_depth gauge
datafrost_broker_queue_depth{process="gateway",trigger="catalog-created"} 3.0
# TYPE datafrost_broker_events_delivered_total counter
datafrost_broker_events_delivered_total{process="gateway",trigger="catalog-created"} 7.0
# TYPE datafrost_broker_events_dead_lettered_total counter
datafrost_broker_events_dead_lettered_total{outcome="dead_letter_sink",trigger="catalog-created"} 1.0
datafrost_broker_events_dead_lettered_total{outcome="undeliverable",trigger="catalog-created"} 1.0
# TYPE datafrost_catalog_images gauge
datafrost_catalog_images{process="catalog",status="processing"} 1.0
datafrost_catalog_images{process="catalog",status="ready"} 4.0
datafrost_catalog_images{process="catalog",status="rejected"} 0.0
"""
FUNCTIONS = [
    {"name": "catalog", "running": True, "cold_starts": 2, "in_flight": 0, "idle_seconds": 4.2},
    {"name": "inspect", "running": False, "cold_starts": 1, "in_flight": 0, "idle_seconds": None},
]
TRIGGERS = [
    {"name": "catalog-created", "subscriber": "http://127.0.0.1:9/catalog/"},
    {"name": "inspect-created", "subscriber": "http://127.0.0.1:9/inspect/"},
]


def test_sums_add_up_over_other_labels() -> None:
    assert sums(METRICS, "datafrost_broker_events_dead_lettered", "trigger") == {"catalog-created": 2.0}


def test_the_summary_has_functions_triggers_and_images() -> None:
    text = render(FUNCTIONS, TRIGGERS, METRICS).splitlines()
    catalog = next(line.split() for line in text if line.startswith("catalog "))
    assert catalog == ["catalog", "running", "2", "0", "4s"]
    inspect = next(line.split() for line in text if line.startswith("inspect "))
    assert inspect == ["inspect", "stopped", "1", "0", "-"]
    trigger = next(line.split() for line in text if line.startswith("catalog-created"))
    assert trigger[2:] == ["3", "7", "0", "2"]  # backlog, delivered, retries, dead letters
    idle_trigger = next(line.split() for line in text if line.startswith("inspect-created"))
    assert idle_trigger[2:] == ["-", "0", "0", "0"]  # no backlog reading for it
    assert text[-1] == "images: processing 1, ready 4, rejected 0 (total 5)"


def test_a_catalog_that_never_ran_has_no_counts_yet() -> None:
    assert render([], [], "").splitlines()[-1].startswith("images: not counted yet")


def test_a_stopped_catalogs_last_counts_are_shown_as_such() -> None:
    stopped = [{"name": "catalog", "running": False, "cold_starts": 1, "in_flight": 0}]
    last = render(stopped, [], METRICS).splitlines()[-1]
    assert last == (
        "images: processing 1, ready 4, rejected 0 (total 5)"
        " (as the catalog last counted them; it is stopped)"
    )


def wait_all_stopped(dev: DevProcess, timeout: float = 60.0) -> dict[str, dict[str, Any]]:
    """/functions once every function is scaled to zero (read with the dev token secret: no authz)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = dev.http.request("GET", dev.url + "/functions", headers=dev_token_headers(dev.data_dir))
        assert answer.status == 200, answer.data
        functions = {f["name"]: f for f in json.loads(answer.data)["functions"]}
        if not any(f["running"] for f in functions.values()):
            return functions
        time.sleep(0.2)
    raise AssertionError("the functions did not idle out")


def test_status_of_a_real_platform_wakes_nothing_and_keeps_the_image_counts(tmp_path: Path) -> None:
    dev = DevProcess(tmp_path / "data", "--idle-seconds", "1").start()
    try:
        dev.upload_ready("demo", images.jpeg())
        before = wait_all_stopped(dev)
        assert before["catalog"]["cold_starts"] >= 1 and before["authz"]["cold_starts"] >= 1

        first, second = dev.cli("status"), dev.cli("status")

        assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
        assert first.stdout == second.stdout  # reading changed nothing it reports
        rows = {line.split()[0]: line.split() for line in first.stdout.splitlines() if line.strip()}
        assert all(rows[name][1] == "stopped" for name in before), first.stdout
        images_line = next(line for line in first.stdout.splitlines() if line.startswith("images:"))
        assert images_line.startswith("images: processing 0, ready 1, rejected 0 (total 1)"), images_line
        assert "it is stopped" in images_line
        after = wait_all_stopped(dev, timeout=1)
        assert {n: f["cold_starts"] for n, f in after.items()} == {
            n: f["cold_starts"] for n, f in before.items()
        }
    finally:
        dev.stop()


def test_the_secret_opens_only_the_status_reads_from_this_machine(tmp_path: Path) -> None:
    dev = DevProcess(tmp_path / "data").start()
    try:
        secret = dev_token_headers(dev.data_dir)

        def functions() -> dict[str, dict[str, Any]]:
            answer = dev.http.request("GET", dev.url + "/functions", headers=secret)
            assert answer.status == 200, answer.data
            return {f["name"]: f for f in json.loads(answer.data)["functions"]}

        for path in ("/functions", "/metrics", "/brokers/default/triggers"):
            assert dev.http.request("GET", dev.url + path, headers=secret).status == 200, path
        assert functions()["authz"]["cold_starts"] == 0  # read without the authz round trip
        for path in ("/functions", "/metrics", "/brokers/default/triggers"):
            assert dev.http.request("GET", dev.url + path).status == 401, path  # no secret, no token
            wrong = dev.http.request("GET", dev.url + path, headers={"X-Dev-Token-Secret": "nope"})
            assert wrong.status == 403 and b"wrong" in wrong.data, path
            rebound = dev.http.request("GET", dev.url + path, headers={**secret, "Host": "evil.example"})
            assert rebound.status == 403, path  # DNS rebinding: addressed to another name
        for method, path in (("GET", "/catalog/images"), ("POST", "/brokers/default/triggers")):
            answer = dev.http.request(method, dev.url + path, headers=secret, body=b"{}")
            assert answer.status == 401, (method, path)  # everything else still needs a token
    finally:
        dev.stop()
