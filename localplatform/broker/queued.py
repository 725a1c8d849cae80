"""What the embedded brokers share: per trigger, `parallelism` delivery threads over a `WorkQueue`.

A backend decides where events live (`_store`), how a trigger gets its backlog (`_start_trigger`),
and what a finished delivery leaves behind (`_settle`); the threads here step each delivery by the
delivery rules. With parallelism 1 (FIFO) a thread waits out each backoff itself: nothing behind a
retrying event overtakes it, which is the price of order. With more, a retrying event waits in the
trigger's `WorkQueue` holding no thread, and the others are delivered meanwhile.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from eventing.trigger import Trigger
from localplatform.broker.base import Broker
from localplatform.broker.work_queue import WorkQueue
from localplatform.delivery import Delivery, DeliveryResult, Outcome, Pending

log = logging.getLogger("datafrost.broker")


@dataclass
class TriggerQueue:
    """One trigger's work and the threads that deliver it."""

    trigger: Trigger
    work: WorkQueue[Delivery] = field(default_factory=WorkQueue)
    workers: list[threading.Thread] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)  # removed, or the broker is closing


class QueuedBroker(Broker):
    """A broker whose triggers are delivered by threads of this process."""

    def _start_workers(self, trigger: Trigger) -> TriggerQueue:
        """The trigger's queue with its threads running; on failure none keeps running, and it raises."""
        tq = TriggerQueue(trigger)
        try:
            for i in range(trigger.parallelism):
                worker = threading.Thread(
                    target=self._work, args=(tq,), name=f"trigger-{trigger.name}-{i}", daemon=True
                )
                worker.start()  # RuntimeError when the process may start no more threads
                tq.workers.append(worker)
        except BaseException:
            self._halt(tq)  # the threads already started end at once
            raise
        return tq

    @staticmethod
    def _halt(tq: TriggerQueue) -> list[Delivery]:
        """Stop the trigger's threads between attempts (retries in flight abandoned); returns what
        they had not taken."""
        tq.stop.set()
        return tq.work.abandon()

    def _step(self, delivery: Delivery) -> DeliveryResult | Pending:
        """One attempt of `delivery` (a backend may record it first)."""
        return self.dispatcher.step(delivery)

    def _settle(self, delivery: Delivery, outcome: Outcome) -> None:
        """What the backend does once a delivery ended (ABORTED: not finished, to be redelivered)."""

    def _crashed(self, delivery: Delivery, exc: Exception) -> Outcome:
        """The outcome of a delivery whose step raised: kept as undeliverable, as RabbitMQ's consumer does."""
        log.error("delivery to trigger %s crashed", delivery.trigger.name, exc_info=exc)
        return Outcome.UNDELIVERABLE

    def _work(self, tq: TriggerQueue) -> None:
        while (delivery := tq.work.get()) is not None:
            if tq.stop.is_set():
                return
            outcome = self._advance(tq, delivery)
            if outcome is None:
                continue  # it waits out its backoff in the queue, holding no thread
            try:
                self._settle(delivery, outcome)
            except Exception:
                log.exception("settling a delivery to trigger %s failed", tq.trigger.name)
            tq.work.done()

    def _advance(self, tq: TriggerQueue, delivery: Delivery) -> Outcome | None:
        """With parallelism 1, deliver to the end, waiting out each backoff on this thread (FIFO); with
        more, make the next attempt and schedule the one after (None)."""
        try:
            step = self._step(delivery)
            while tq.trigger.parallelism == 1 and isinstance(step, Pending):
                if tq.stop.wait(step.delay):
                    return Outcome.ABORTED
                step = self._step(delivery)
        except Exception as exc:
            return self._crashed(delivery, exc)
        if isinstance(step, DeliveryResult):
            return step.outcome
        return None if tq.work.put_later(delivery, step.delay) else Outcome.ABORTED
