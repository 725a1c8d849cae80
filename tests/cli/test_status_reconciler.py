"""`datafrost status`'s reconciler block: the last pass and the warning when the store does not notify."""

from __future__ import annotations

from cli.status import reconciler_lines, render

LAST_PASS = """\
# TYPE datafrost_reconcile_last_pass_timestamp_seconds gauge
datafrost_reconcile_last_pass_timestamp_seconds{bucket="uploads",process="catalog"} 1.7649e+09
# TYPE datafrost_reconcile_last_pass_items gauge
datafrost_reconcile_last_pass_items{process="catalog",reason="missing"} 2.0
datafrost_reconcile_last_pass_items{process="catalog",reason="stuck"} 1.0
datafrost_reconcile_last_pass_items{process="catalog",reason="gone"} 0.0
datafrost_reconcile_last_pass_items{process="catalog",reason="gave_up"} 0.0
datafrost_reconcile_last_pass_items{process="catalog",reason="unnotified"} UNNOTIFIED
datafrost_reconcile_last_pass_items{process="catalog",reason="deferred"} 0.0
"""
PROBE = """\
# TYPE datafrost_storage_notifications_ok gauge
datafrost_storage_notifications_ok{bucket="uploads",process="gateway"} OK
"""


def test_the_last_pass_is_shown_and_objects_without_events_bring_the_fix() -> None:
    lines = reconciler_lines(LAST_PASS.replace("UNNOTIFIED", "2.0"))
    assert lines[0] == (
        "reconciler: last pass 2025-12-05T02:00:00+00:00: repaired missing 2, stuck 1, gone 0, gave_up 0;"
        " unnotified 2, deferred 0"
    )
    warning = "warning: the store does not notify storage-events (2 objects found without any event):"
    assert lines[1] == warning
    assert "mc event add" in lines[2]


def test_a_failed_probe_warns_and_a_good_one_is_quiet() -> None:
    (warning, fix) = reconciler_lines(PROBE.replace("OK", "0.0"))
    assert "no probe notification from bucket uploads" in warning and "MINIO_NOTIFY_WEBHOOK" in fix
    assert reconciler_lines(PROBE.replace("OK", "1.0")) == []
    assert len(reconciler_lines(LAST_PASS.replace("UNNOTIFIED", "0.0") + PROBE.replace("OK", "1.0"))) == 1


def test_nothing_is_said_without_the_gauges() -> None:
    assert reconciler_lines("") == []
    assert "reconciler" not in render([], [], "")
