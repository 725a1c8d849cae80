"""One reconciler pass: read the catalog, list the uploads bucket, plan (`reconcile.plan`), emit the
repairs to the broker at K_SINK in batches, record them, and keep the pass's summary.

Each batch is sent as concurrent binary-mode requests (what every Knative broker ingress takes; the
batched content mode is not) and recorded once the broker took all of it, so a pass that fails part
way leaves the rest for the next pass, which emits the same ids for what it repeats.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import flask

from eventing.client import SendError, send_event
from eventing.cloudevent import CloudEvent
from functions.catalog import reconcile_db
from functions.catalog.handlers import open_catalog
from functions.catalog.reconcile import GAVE_UP, REASONS, STUCK, Plan, Policy, Repair, plan
from functions.context import Call, Context
from functions.runtime import json_response
from pipeline.events import NOTIFICATIONS_HINT, RECONCILER_SOURCE
from pipeline.minio_codec import object_event
from shared import metrics
from shared.errors import HttpError
from shared.objectstore.factory import open_store
from shared.settings import Settings

log = logging.getLogger("datafrost.catalog.reconcile")
SEND_WORKERS = 8


def _pass_lock(config: Settings) -> threading.Lock:
    """One pass at a time in a process (a ping and a manual pass would only repeat each other)."""
    return threading.Lock()


def repair_event(repair: Repair) -> CloudEvent:
    assert repair.change is not None and repair.event_id is not None
    return object_event(repair.change).with_attributes(id=repair.event_id, source=RECONCILER_SOURCE)


def gave_up_reason(generation: int, policy: Policy) -> str:
    minutes = int(policy.stuck.total_seconds() // 60)
    return (
        f"stuck in processing: the reconciler re-emitted its object event {generation} times "
        f"(DATAFROST_RECONCILE_MAX_REPAIRS) and it never finished, over {minutes} minutes each "
        "(DATAFROST_RECONCILE_STUCK_SECONDS); upload it again or check the inspect and thumbnail logs"
    )


def run_pass(context: Context) -> dict[str, Any]:
    """Run one pass and return its summary; HttpError 503 when the store or the broker fails."""
    with context.client(_pass_lock):
        try:
            return _run(context)
        except Exception:
            metrics.reconcile_passes.labels("failed").inc()
            raise


def on_ping(event: CloudEvent, context: Context) -> None:
    """A PingSource's tick (locally: `datafrost dev`'s): one pass."""
    log.info("reconciler pass on ping %s from %s", event.id, event.source)
    run_pass(context)


def reconcile_now(call: Call) -> flask.Response:
    """POST /reconcile (admin): one pass now; its summary."""
    return json_response(run_pass(call.context))


def last_pass(call: Call) -> flask.Response:
    """GET /reconcile (admin): the last pass of each bucket, as the catalog keeps it."""
    engine = call.client(open_catalog).writer.engine
    kept = reconcile_db.last_passes(engine)
    return json_response({"passes": [summary for _, (_, summary) in sorted(kept.items())]})


def register_metrics(context: Context) -> None:
    """The last pass's gauges, read from the database at scrape time (survive scale to zero)."""

    def kept() -> dict[str, tuple[datetime, dict[str, Any]]]:
        try:
            return reconcile_db.last_passes(context.client(open_catalog).writer.engine)
        except Exception as exc:  # a scrape must not fail with the database; no sample meanwhile
            log.warning("cannot read the reconciler's last pass for metrics: %s", exc)
            return {}

    def finished() -> dict[str, float]:
        return {bucket: when.timestamp() for bucket, (when, _) in kept().items()}

    def items() -> dict[str, float]:
        summary = kept().get(context.settings.uploads_bucket, (None, None))[1]
        if not summary:
            return {}
        found = {**summary.get("repaired", {}), "unnotified": summary.get("unnotified", 0)}
        return {reason: float(n) for reason, n in {**found, "deferred": summary.get("deferred", 0)}.items()}

    metrics.register_gauge(
        metrics.RECONCILE_LAST_PASS_TIME,
        "When the reconciler's last pass finished, per bucket.",
        "bucket",
        finished,
    )
    metrics.register_gauge(
        metrics.RECONCILE_LAST_PASS_ITEMS,
        "What the reconciler's last pass repaired, found unnotified or deferred, by reason.",
        "reason",
        items,
    )


def _run(context: Context) -> dict[str, Any]:
    config = context.settings
    if not config.sink:
        raise HttpError("K_SINK (the broker ingress) is not set: the reconciler cannot emit", 503)
    bucket, policy = config.uploads_bucket, Policy.of(config.reconcile)
    engine = context.client(open_catalog).writer.engine
    started = datetime.now(UTC)
    records = reconcile_db.read_records(engine, bucket)  # before the listing: see reconcile.plan
    listed_at = datetime.now(UTC)
    try:
        objects = list(context.client(open_store).list(bucket))
    except Exception as exc:
        log.warning("reconciler cannot list bucket %s: %s", bucket, exc)
        raise HttpError(f"the object store cannot be listed: {type(exc).__name__}", 503) from None
    planned = plan(bucket, objects, records, policy, datetime.now(UTC), listed_at)
    done, error = _apply(config, engine, planned, policy)
    finished = datetime.now(UTC)
    summary = _summary(bucket, started, finished, planned, done, len(objects), len(records), error)
    reconcile_db.save_summary(engine, bucket, finished, summary)
    for reason, n in done.items():
        metrics.reconcile_repairs.labels(reason).inc(n)
    metrics.reconcile_unnotified.inc(planned.unnotified)
    metrics.reconcile_passes.labels("failed" if error else "ok").inc()
    if planned.unnotified:
        log.warning(
            "%d objects in %s had no event at all: %s", planned.unnotified, bucket, NOTIFICATIONS_HINT
        )
    log.info("reconciler pass over %s: %s", bucket, summary["repaired"])
    if error:
        raise HttpError(f"the broker did not take the reconciler's events: {error}", 503)
    return summary


def _apply(config: Settings, engine: Any, planned: Plan, policy: Policy) -> tuple[dict[str, int], str | None]:
    """Give up on what cannot be repaired, emit the rest batch by batch; (done per reason, error)."""
    done = dict.fromkeys(REASONS, 0)
    for repair in (r for r in planned.repairs if r.reason == GAVE_UP):
        if reconcile_db.give_up(engine, repair.image_id, gave_up_reason(repair.generation, policy)):
            done[GAVE_UP] += 1
    emitting = [r for r in planned.repairs if r.change is not None]
    size = max(1, config.reconcile.batch)
    with ThreadPoolExecutor(min(SEND_WORKERS, size)) as pool:
        for start in range(0, len(emitting), size):
            batch = emitting[start : start + size]
            try:
                list(pool.map(lambda r: send_event(config.sink or "", repair_event(r)), batch))
            except SendError as exc:
                log.warning("the broker did not take a batch of repairs: %s", exc)
                return done, str(exc)[:300]
            now = datetime.now(UTC)
            for repair in batch:
                if repair.reason == STUCK:
                    reconcile_db.record_repair(engine, repair.image_id, repair.generation, now)
                done[repair.reason] += 1
    return done, None


def _summary(
    bucket: str,
    started: datetime,
    finished: datetime,
    planned: Plan,
    done: dict[str, int],
    objects: int,
    records: int,
    error: str | None,
) -> dict[str, Any]:
    emitted = sum(n for reason, n in done.items() if reason != GAVE_UP)
    summary: dict[str, Any] = {
        "bucket": bucket,
        "started_at": started.isoformat(),
        "finished_at": finished.isoformat(),
        "objects": objects,
        "records": records,
        "emitted": emitted,
        "repaired": done,
        "unnotified": planned.unnotified,
        "deferred": planned.deferred + sum(1 for r in planned.repairs if r.change) - emitted,
        "planned": [{"reason": r.reason, "image_id": r.image_id, "key": r.key} for r in planned.repairs[:20]],
    }
    if planned.unnotified:
        summary["hint"] = NOTIFICATIONS_HINT
    if error:
        summary["error"] = error
    return summary
