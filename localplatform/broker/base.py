"""What every broker backend offers: durable publish, triggers, and dispatch by the delivery rules."""

from __future__ import annotations

import abc
import logging
import threading
from collections.abc import Sequence

from eventing.cloudevent import CloudEvent
from eventing.trigger import Trigger
from localplatform.delivery import Dispatcher

log = logging.getLogger("datafrost.broker")


class BrokerUnavailable(RuntimeError):
    """The backend did not take the events (RabbitMQ unreachable or no confirm): nothing was accepted."""


class Broker(abc.ABC):
    """A Knative-style broker: events in through `publish`, out to every matching trigger."""

    def __init__(self, name: str = "default") -> None:
        self.name = name
        self._stopping = threading.Event()
        self._triggers: dict[str, Trigger] = {}
        self._lock = threading.RLock()
        self.dispatcher = Dispatcher(self.publish_one, self._stopping)

    def publish_one(self, event: CloudEvent) -> None:
        self.publish([event])

    @abc.abstractmethod
    def publish(self, events: Sequence[CloudEvent]) -> None:
        """Accept events; when this returns they are durable for this backend (confirmed by RabbitMQ)."""

    def set_trigger(self, trigger: Trigger) -> None:
        """Add a trigger or replace the one of the same name."""
        with self._lock:
            previous = self._triggers.get(trigger.name)
            if previous == trigger:
                return
            if previous is not None:
                self._stop_trigger(previous)
            self._triggers[trigger.name] = trigger
            self._start_trigger(trigger)

    def remove_trigger(self, name: str) -> bool:
        """Remove a trigger and its backlog; False when there was none of that name."""
        with self._lock:
            trigger = self._triggers.pop(name, None)
            if trigger is None:
                return False
            self._stop_trigger(trigger, purge=True)
            return True

    def triggers(self) -> list[Trigger]:
        with self._lock:
            return sorted(self._triggers.values(), key=lambda t: t.name)

    @abc.abstractmethod
    def _start_trigger(self, trigger: Trigger) -> None: ...

    @abc.abstractmethod
    def _stop_trigger(self, trigger: Trigger, purge: bool = False) -> None: ...

    @abc.abstractmethod
    def backlog(self) -> dict[str, int]:
        """Events waiting per trigger (not yet acknowledged)."""

    def close(self) -> None:
        """Stop dispatching; events not yet delivered stay queued where the backend is durable.

        Closing twice is harmless.
        """
        if self._stopping.is_set():
            return
        self._stopping.set()
        with self._lock:
            for trigger in list(self._triggers.values()):
                self._stop_trigger(trigger)
        self.dispatcher.close()
