"""The embedded broker: in-memory queues per trigger, like Knative's InMemoryChannel (not durable)."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from eventing.cloudevent import CloudEvent
from eventing.trigger import Trigger
from localplatform.broker.base import Broker
from localplatform.delivery import Outcome
from shared import metrics

log = logging.getLogger("datafrost.broker.memory")
_STOP = object()


@dataclass
class _TriggerQueue:
    trigger: Trigger
    events: queue.Queue[object] = field(default_factory=queue.Queue)
    workers: list[threading.Thread] = field(default_factory=list)
    in_flight: int = 0
    stop: threading.Event = field(default_factory=threading.Event)  # removed, or the broker is closing


class MemoryBroker(Broker):
    """Events live in memory until delivered; `parallelism` workers per trigger (1 keeps FIFO order)."""

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
                    tq.events.put(event)

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
            for _ in tq.workers:
                tq.events.put(_STOP)
            raise
        self._queues[trigger.name] = tq

    def _stop_trigger(self, trigger: Trigger, purge: bool = False) -> None:
        tq = self._queues.pop(trigger.name)
        if purge or self._stopping.is_set():
            tq.stop.set()  # abandon retries in flight
        else:
            self._replaced.append(tq)  # the old workers drain the backlog until close()
        if not purge and not tq.events.empty():
            log.warning("trigger %s stopped with %d events undelivered", trigger.name, tq.events.qsize())
        for _ in tq.workers:
            tq.events.put(_STOP)

    def _work(self, tq: _TriggerQueue) -> None:
        while True:
            item = tq.events.get()
            if item is _STOP or tq.stop.is_set():
                return
            assert isinstance(item, CloudEvent)
            tq.in_flight += 1
            try:
                result = self.dispatcher.deliver(item, tq.trigger, tq.stop)
                if result.outcome is Outcome.ABORTED:
                    return
            except Exception:
                log.exception("delivery to trigger %s crashed", tq.trigger.name)
            finally:
                tq.in_flight -= 1

    def close(self) -> None:
        super().close()
        for tq in self._replaced:
            tq.stop.set()

    def backlog(self) -> dict[str, int]:
        with self._lock:
            return {name: tq.events.qsize() + tq.in_flight for name, tq in self._queues.items()}
