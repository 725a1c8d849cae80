"""Metric helpers: bounded label values and scrape-time gauges."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from pipeline import events
from shared import metrics


def test_event_type_labels_are_bounded() -> None:
    assert metrics.event_type_label(events.IMAGE_ANALYZED, events.KNOWN_TYPES) == events.IMAGE_ANALYZED
    assert metrics.event_type_label("com.example.anything-a-client-sent", events.KNOWN_TYPES) == "other"


def test_a_gauge_is_read_at_scrape_time_and_empty_when_unavailable() -> None:
    counts = {"ready": 2.0}
    registry = CollectorRegistry()
    registry.register(metrics.GaugeCollector("demo_images", "Images.", "status", lambda: dict(counts)))
    assert 'demo_images{status="ready"} 2.0' in generate_latest(registry).decode()
    counts["ready"] = 5.0
    assert 'demo_images{status="ready"} 5.0' in generate_latest(registry).decode()
    counts.clear()
    assert "demo_images{" not in generate_latest(registry).decode()
