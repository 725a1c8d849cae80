"""Merging every process's exposition into the gateway's `/metrics`."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from localplatform.metrics_aggregate import merge

CATALOG = """# HELP datafrost_function_events_total Events handled by a function.
# TYPE datafrost_function_events_total counter
datafrost_function_events_total{function="catalog",outcome="ok",type="io.datafrost.object.created"} 3.0
# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 1.5
# HELP datafrost_catalog_images Images in the catalog by status.
# TYPE datafrost_catalog_images gauge
datafrost_catalog_images{status="ready"} 2.0
"""
GATEWAY = """# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 4.0
# HELP datafrost_broker_delivery_duration_seconds Time from dispatch to the final outcome.
# TYPE datafrost_broker_delivery_duration_seconds histogram
datafrost_broker_delivery_duration_seconds_bucket{le="0.1",trigger="t"} 1.0
datafrost_broker_delivery_duration_seconds_bucket{le="+Inf",trigger="t"} 2.0
datafrost_broker_delivery_duration_seconds_count{trigger="t"} 2.0
datafrost_broker_delivery_duration_seconds_sum{trigger="t"} 0.7
"""


def samples(text: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def test_every_sample_keeps_its_value_and_names_its_process() -> None:
    merged = samples(merge({"catalog": CATALOG, "gateway": GATEWAY}))
    assert merged[("process_cpu_seconds_total", frozenset({("process", "catalog")}))] == 1.5
    assert merged[("process_cpu_seconds_total", frozenset({("process", "gateway")}))] == 4.0
    ready = frozenset({("status", "ready"), ("process", "catalog")})
    assert merged[("datafrost_catalog_images", ready)] == 2.0
    bucket = frozenset({("le", "+Inf"), ("trigger", "t"), ("process", "gateway")})
    assert merged[("datafrost_broker_delivery_duration_seconds_bucket", bucket)] == 2.0
    assert len(merged) == 8  # 3 from the catalog, 5 from the gateway: none lost, none merged away


def test_a_family_is_declared_once_however_many_processes_have_it() -> None:
    text = merge({"catalog": CATALOG, "gateway": GATEWAY, "inspect": CATALOG}).decode()
    assert text.count("# TYPE process_cpu_seconds_total counter") == 1
    assert text.count("# TYPE datafrost_broker_delivery_duration_seconds histogram") == 1


def test_nothing_in_is_an_empty_exposition() -> None:
    assert merge({}) == b""
