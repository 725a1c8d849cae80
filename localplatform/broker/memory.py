"""The embedded broker: in-memory queues per trigger, like Knative's InMemoryChannel (not durable)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from eventing.cloudevent import CloudEvent
from eventing.trigger import Trigger
from localplatform.broker.base import Broker
from localplatform.broker.work_queue import WorkQueue
from localplatform.delivery import Delivery, Pending
from shared import metrics

log = logging.getLogger("datafrost.broker.memory")


@dataclass
class _TriggerQueue:
    trigger: Trigger
    work: WorkQueue[Delivery] = field(default_factory=WorkQueue)
    workers: list[threading.Thread] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)  # removed, or the broker is closing


class MemoryBroker(Broker):
    """Events live in memory until delivered; `parallelism` workers per trigger.

    With parallelism 1 (FIFO) the worker waits out each backoff itself: nothing behind a retrying event
    overtakes it, which is the price of order. With more, a retrying event waits in the trigger's
    `WorkQueue` holding no worker, and the others are delivered meanwhile.
    """

    def __init__(self, name: str = "default") -> None:
        super().__init__(name)
        self._queues: dict[str, _TriggerQueue] = {}
        self._replaced: list[_TriggerQueue] = []  # their workers still drain the old backlog

    def _store(self, events: Sequence[CloudEvent]) -> None:
        with self._lock:
            targets = list(self._queues.values())
        for event in events:
            metrics.events_received.labels(self.name).inc()
            for tq in targets:
                if tq.trigger.matches(event):
                    tq.work.put(Delivery(event, tq.trigger))

    def _start_trigger(self, trigger: Trigger, previous: Trigger | None) -> None:
        tq = _TriggerQueue(trigger)
        try:
            for i in range(trigger.parallelism):
                worker = threading.Thread(
                    target=self._work, args=(tq,), name=f"trigger-{trigger.name}-{i}", daemon=True
                )
                worker.start()  # RuntimeError when the process may start no more threads
                tq.workers.append(worker)
        except BaseException:
            tq.stop.set()  # the workers already started end at once: nothing of it keeps running
            tq.work.abandon()
            raise
        self._queues[trigger.name] = tq

    def _stop_trigger(self, trigger: Trigger, purge: bool = False) -> None:
        tq = self._queues.pop(trigger.name)
        if not purge and len(tq.work):
            log.warning("trigger %s stopped with %d events undelivered", trigger.name, len(tq.work))
        if purge or self._stopping.is_set():
            tq.stop.set()  # abandon retries in flight
            tq.work.abandon()
        else:
            self._replaced.append(tq)  # the old workers drain the backlog (retries too) until close()
            tq.work.finish()

    def _work(self, tq: _TriggerQueue) -> None:
        in_order = tq.trigger.parallelism == 1
        while (delivery := tq.work.get()) is not None:
            if tq.stop.is_set():
                return
            try:
                if in_order:  # FIFO: the retries hold the queue
                    self.dispatcher.deliver(delivery, tq.stop)
                else:
                    step = self.dispatcher.step(delivery)
                    if isinstance(step, Pending) and tq.work.put_later(delivery, step.delay):
                        continue  # it waits out its backoff holding no worker
            except Exception:
                log.exception("delivery to trigger %s crashed", tq.trigger.name)
            tq.work.done()

    def close(self) -> None:
        super().close()
        for tq in self._replaced:
            tq.stop.set()
            tq.work.abandon()

    def backlog(self) -> dict[str, int]:
        with self._lock:
            return {name: len(tq.work) for name, tq in self._queues.items()}
