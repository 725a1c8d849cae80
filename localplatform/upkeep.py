"""`datafrost dev`'s upkeep: it plays the Knative PingSource that drives the catalog's reconciler, and
probes at start whether the object store notifies storage-events at all.

`ReconcilePings` publishes a `dev.knative.sources.ping` CloudEvent into the broker at start and then
every `DATAFROST_RECONCILE_INTERVAL` seconds (0: never), with the id of its tick (the number of
intervals since the epoch), so a ping published twice is one ping to the catalog.

`NotificationProbe` (a store other than the local one, whose watcher notifies by construction) puts a
probe object under `.datafrost/probe/` into the uploads bucket and watches what the broker accepts
for storage-events' `io.datafrost.storage.probed` of it, for `DATAFROST_STORAGE_PROBE_SECONDS` at most,
then removes the probe. None in time: a warning naming the fix, and `datafrost_storage_notifications_ok`
0 (1 when it came), which `datafrost status` shows.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Sequence

from eventing.cloudevent import CloudEvent, new_event
from localplatform.broker.base import Broker
from pipeline.events import (
    NOTIFICATIONS_HINT,
    PING,
    PROBE_PREFIX,
    RECONCILE_PING_DATA,
    STORAGE_PROBED,
    ping_source,
)
from shared import metrics
from shared.objectstore.factory import open_store
from shared.settings import Settings

log = logging.getLogger("datafrost.dev")
PING_SOURCE = ping_source("datafrost", "reconcile")  # what the Knative PingSource would send as


def ping_event(tick: int) -> CloudEvent:
    """The ping of one tick: its id is the tick's, whoever publishes it."""
    return new_event(PING, PING_SOURCE, RECONCILE_PING_DATA, id=f"reconcile-{tick}")


class ReconcilePings:
    def __init__(self, broker: Broker, interval: int) -> None:
        self.broker, self.interval = broker, interval
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reconcile-pings", daemon=True)

    def start(self) -> ReconcilePings:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping.is_set():
            tick = int(time.time() // self.interval)
            try:
                self.broker.publish([ping_event(tick)])
                log.info("reconciler ping %d published", tick)
            except Exception as exc:  # the broker is briefly unreachable: the next tick pings again
                log.warning("cannot publish the reconciler's ping: %s", exc)
            self._stopping.wait(max(0.0, (tick + 1) * self.interval - time.time()))


class NotificationProbe:
    def __init__(self, config: Settings, broker: Broker) -> None:
        self.config, self.broker = config, broker
        self.key = f"{PROBE_PREFIX}{uuid.uuid4().hex}"
        self.arrived = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="notification-probe", daemon=True)

    def start(self) -> NotificationProbe:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._thread.join(timeout)

    def _observe(self, events: Sequence[CloudEvent]) -> None:
        if any(e.type == STORAGE_PROBED and e.subject == self.key for e in events):
            self.arrived.set()

    def _run(self) -> None:
        bucket, wait = self.config.uploads_bucket, self.config.reconcile.probe_seconds
        store = open_store(self.config)
        self.broker.observers.append(self._observe)
        try:
            store.put(bucket, self.key, b"datafrost notification probe\n", "text/plain")
            deadline = time.monotonic() + wait
            while not self.arrived.is_set() and not self._stopping.is_set() and time.monotonic() < deadline:
                self.arrived.wait(min(0.2, max(0.0, deadline - time.monotonic())))
            if self._stopping.is_set() and not self.arrived.is_set():
                return  # stopped before knowing: no verdict
            metrics.storage_notifications_ok.labels(bucket).set(1 if self.arrived.is_set() else 0)
            if self.arrived.is_set():
                log.info("the store notifies storage-events (probe %s arrived)", self.key)
            else:
                log.warning(
                    "the store sent no notification for probe %s/%s within %d s: uploads to it will not "
                    "be processed until it does (the reconciler repairs them on its passes); %s",
                    bucket, self.key, wait, NOTIFICATIONS_HINT,
                )  # fmt: skip
        except Exception as exc:
            log.warning("cannot probe the store's notifications: %s", exc)
        finally:
            self.broker.observers.remove(self._observe)
            try:
                store.delete(bucket, self.key)
            except Exception as exc:
                log.warning("cannot remove probe %s/%s: %s", bucket, self.key, exc)


def start_upkeep(config: Settings, broker: Broker) -> list[ReconcilePings | NotificationProbe]:
    """Start the pings and the probe the settings ask for; returns what to stop."""
    running: list[ReconcilePings | NotificationProbe] = []
    if config.reconcile.interval_seconds > 0:
        running.append(ReconcilePings(broker, config.reconcile.interval_seconds).start())
    if config.store != "local" and config.reconcile.probe_seconds > 0:
        running.append(NotificationProbe(config, broker).start())
    return running
