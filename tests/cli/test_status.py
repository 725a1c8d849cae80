"""`datafrost status` rendering: the three gateway answers in, the summary out."""

from __future__ import annotations

from cli.status import render, sums

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
    assert inspect == ["inspect", "idle", "1", "0", "-"]
    trigger = next(line.split() for line in text if line.startswith("catalog-created"))
    assert trigger[2:] == ["3", "7", "0", "2"]  # backlog, delivered, retries, dead letters
    idle_trigger = next(line.split() for line in text if line.startswith("inspect-created"))
    assert idle_trigger[2:] == ["-", "0", "0", "0"]  # no backlog reading for it
    assert text[-1] == "images: processing 1, ready 4, rejected 0 (total 5)"


def test_an_idle_catalog_is_said_not_woken() -> None:
    assert render([], [], "").splitlines()[-1].startswith("images: the catalog is idle")
