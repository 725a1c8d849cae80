"""The in-memory broker: queues per trigger in this process, like Knative's InMemoryChannel.

Not durable: what is queued when the process stops is gone. For tests and the benchmark
(`--broker memory`); `datafrost dev` defaults to the durable local broker (`broker/durable.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from eventing.cloudevent import CloudEvent
from eventing.trigger import Trigger
from localplatform.broker.queued import QueuedBroker, TriggerQueue
from localplatform.delivery import Delivery
from shared import metrics

log = logging.getLogger("datafrost.broker.memory")


class MemoryBroker(QueuedBroker):
    """Events live in memory until delivered. A replaced trigger's old threads drain its old backlog
    (retries too) under the old definition until the broker closes."""

    def __init__(self, name: str = "default") -> None:
        super().__init__(name)
        self._queues: dict[str, TriggerQueue] = {}
        self._replaced: list[TriggerQueue] = []  # their workers still drain the old backlog

    def _store(self, events: Sequence[CloudEvent]) -> None:
        with self._lock:
            targets = list(self._queues.values())
        for event in events:
            metrics.events_received.labels(self.name).inc()
            for tq in targets:
                if tq.trigger.matches(event):
                    tq.work.put(Delivery(event, tq.trigger))

    def _start_trigger(self, trigger: Trigger, previous: Trigger | None) -> None:
        self._queues[trigger.name] = self._start_workers(trigger)

    def _stop_trigger(self, trigger: Trigger, purge: bool = False) -> None:
        tq = self._queues.pop(trigger.name)
        if not purge and len(tq.work):
            log.warning("trigger %s stopped with %d events undelivered", trigger.name, len(tq.work))
        if purge or self._stopping.is_set():
            self._halt(tq)
        else:
            self._replaced.append(tq)
            tq.work.finish()

    def close(self) -> None:
        super().close()
        for tq in self._replaced:
            self._halt(tq)

    def backlog(self) -> dict[str, int]:
        with self._lock:
            return {name: len(tq.work) for name, tq in self._queues.items()}
