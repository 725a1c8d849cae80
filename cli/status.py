"""`datafrost status`: a running `datafrost dev` at a glance: functions, triggers, images.

Read from the gateway: `/functions` (processes), `/brokers/default/triggers` (admin) and the
aggregate `/metrics` (backlog, deliveries, dead letters, images by status). It starts nothing and
changes nothing it reports: without --token it sends the data dir's dev token secret, with which the
gateway answers these reads from this machine without the authz round trip (and no token is minted,
so authz is not started either); a catalog scaled to zero shows the counts it exported last.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import urllib3
from prometheus_client.parser import text_string_to_metric_families

from cli.common import (
    DEV_SECRET_HEADER,
    CliError,
    add_url,
    auth_headers,
    fail_unless,
    request_json,
    table_lines,
)
from pipeline.events import NOTIFICATIONS_HINT
from shared import metrics

ADMIN = "admin"


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "status", help="summarize a running datafrost dev: functions, triggers, images"
    )
    add_url(parser)
    parser.set_defaults(run=run)


def sums(metrics_text: str, family: str, label: str) -> dict[str, float]:
    """Sample values of one family summed by one label (over processes and other labels)."""
    totals: dict[str, float] = defaultdict(float)
    for metric in text_string_to_metric_families(metrics_text):
        for sample in metric.samples:
            if sample.name in (family, family + "_total") and label in sample.labels:
                totals[sample.labels[label]] += sample.value
    return dict(totals)


def _count(value: float | None) -> str:
    return "-" if value is None else str(int(value))


def render(
    functions: Iterable[Mapping[str, Any]], triggers: Iterable[Mapping[str, Any]], metrics_text: str
) -> str:
    """The summary as text (pure: the three answers in, the tables out)."""
    lines: list[str] = []
    rows: list[tuple[str, ...]] = [("FUNCTION", "STATE", "COLD STARTS", "IN FLIGHT", "IDLE FOR")]
    for fn in sorted(functions, key=lambda f: str(f["name"])):
        idle = fn.get("idle_seconds")
        rows.append(
            (
                str(fn["name"]),
                "running" if fn.get("running") else "stopped",
                str(fn.get("cold_starts", 0)),
                str(fn.get("in_flight", 0)),
                "-" if idle is None or not fn.get("running") else f"{idle:.0f}s",
            )
        )
    lines += table_lines(rows)
    depth = sums(metrics_text, metrics.BROKER_QUEUE_DEPTH, "trigger")
    delivered = sums(metrics_text, "datafrost_broker_events_delivered", "trigger")
    dead = sums(metrics_text, "datafrost_broker_events_dead_lettered", "trigger")
    retries = sums(metrics_text, "datafrost_broker_delivery_retries", "trigger")
    rows = [("TRIGGER", "SUBSCRIBER", "BACKLOG", "DELIVERED", "RETRIES", "DEAD LETTERS")]
    for t in sorted(triggers, key=lambda t: str(t["name"])):
        name = str(t["name"])
        rows.append(
            (
                name,
                str(t.get("subscriber", "")),
                _count(depth.get(name)),
                _count(delivered.get(name, 0)),
                _count(retries.get(name, 0)),
                _count(dead.get(name, 0)),
            )
        )
    lines += ["", *table_lines(rows), ""]
    images = sums(metrics_text, metrics.CATALOG_IMAGES, "status")
    catalog_running = any(fn.get("running") for fn in functions if fn["name"] == "catalog")
    if images:
        counts = ", ".join(f"{status} {int(n)}" for status, n in sorted(images.items()))
        since = "" if catalog_running else " (as the catalog last counted them; it is stopped)"
        lines.append(f"images: {counts} (total {int(sum(images.values()))}){since}")
    else:
        lines.append("images: not counted yet (the catalog has not run since the platform started)")
    lines += reconciler_lines(metrics_text)
    return "\n".join(lines)


def read_headers(args: argparse.Namespace) -> dict[str, str]:
    """--token when given; else the data dir's dev token secret (no token minted, authz not started);
    else a token from the dev issuer (a platform without the secret: auth off, or a real issuer)."""
    if args.token:
        return auth_headers(args, ADMIN)
    from shared.auth.dev_issuer import read_dev_token_secret

    secret = read_dev_token_secret(args.data_dir)
    return {DEV_SECRET_HEADER: secret} if secret else auth_headers(args, ADMIN)


def reconciler_lines(metrics_text: str) -> list[str]:
    """The reconciler's last pass (the catalog's gauges, while it runs) and the start probe's verdict
    on the store's notifications (the gateway's gauge), with the fix when notifications are missing."""
    lines: list[str] = []
    finished = sums(metrics_text, metrics.RECONCILE_LAST_PASS_TIME, "bucket")
    items = {k: int(v) for k, v in sums(metrics_text, metrics.RECONCILE_LAST_PASS_ITEMS, "reason").items()}
    if finished:
        when = datetime.fromtimestamp(max(finished.values()), UTC).isoformat(timespec="seconds")
        repaired = ", ".join(f"{r} {items.get(r, 0)}" for r in ("missing", "stuck", "gone", "gave_up"))
        lines.append(
            f"reconciler: last pass {when}: repaired {repaired}; unnotified {items.get('unnotified', 0)},"
            f" deferred {items.get('deferred', 0)}"
        )
    notifying = sums(metrics_text, "datafrost_storage_notifications_ok", "bucket")
    silent = sorted(b for b, ok in notifying.items() if not ok)
    if silent or items.get("unnotified"):
        why = f"no probe notification from bucket {', '.join(silent)}" if silent else ""
        found = f"{items['unnotified']} objects found without any event" if items.get("unnotified") else ""
        evidence = "; ".join(part for part in (why, found) if part)
        lines.append(f"warning: the store does not notify storage-events ({evidence}):")
        lines.append(f"  {NOTIFICATIONS_HINT}")
    return lines


def run(args: argparse.Namespace) -> int:
    base = args.url.rstrip("/")
    headers = read_headers(args)
    status, functions = request_json("GET", f"{base}/functions", headers=headers)
    if status == 403 and DEV_SECRET_HEADER in headers:
        raise CliError(
            f"the platform refused the dev token secret of {args.data_dir}: {(functions or {}).get('error')} "
            "(pass --data-dir with the data dir of the running `datafrost dev`, or --token)"
        )
    fail_unless(status, functions, 200)
    status, triggers = request_json("GET", f"{base}/brokers/default/triggers", headers=headers)
    fail_unless(status, triggers, 200)
    try:
        answer = urllib3.PoolManager(retries=False).request(
            "GET", f"{base}/metrics", headers=headers, timeout=30
        )
    except urllib3.exceptions.HTTPError as exc:
        raise CliError(f"cannot reach {base}/metrics: {exc.__class__.__name__}") from None
    if answer.status != 200:
        raise CliError(f"server answered {answer.status} for /metrics")
    print(render(functions["functions"], triggers["triggers"], answer.data.decode()))
    return 0
