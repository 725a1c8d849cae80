"""What every broker backend offers: durable publish, triggers, and dispatch by the delivery rules."""

from __future__ import annotations

import abc
import logging
import threading
from collections.abc import Callable, Sequence

from eventing import broker_ttl
from eventing.cloudevent import CloudEvent
from eventing.trigger import Trigger
from localplatform.delivery import Dispatcher
from shared import metrics
from shared.logging import log_fields

log = logging.getLogger("datafrost.broker")
TTL_EXPIRED = "ttl_expired"  # the reason label of an event the loop guard dropped
# Delivery workers (threads) of all triggers together: a trigger's parallelism is bounded (1000), this
# bounds their sum, so no number of triggers can take every thread the process may start.
MAX_DELIVERY_WORKERS = 4000


class BrokerUnavailable(RuntimeError):
    """The backend did not take the events (RabbitMQ unreachable or no confirm): nothing was accepted."""


class TriggerError(RuntimeError):
    """A trigger could not be started or stopped; the broker is as it was before the call."""


class TriggerRefused(TriggerError):
    """The trigger would take more delivery workers than the platform has left; nothing changed."""


class Broker(abc.ABC):
    """A Knative-style broker: events in through `publish`, out to every matching trigger.

    A trigger is registered only once it runs: a trigger that fails to start leaves nothing behind (its
    predecessor of the same name, if any, runs again), so it can be set again or deleted.
    """

    def __init__(self, name: str = "default") -> None:
        self.name = name
        self._stopping = threading.Event()
        self._triggers: dict[str, Trigger] = {}
        self._lock = threading.RLock()
        self.dispatcher = Dispatcher(self.publish_one, self._stopping)
        self.observers: list[Callable[[Sequence[CloudEvent]], None]] = []  # told of what each publish admits

    def publish_one(self, event: CloudEvent) -> None:
        self.publish([event])

    def publish(self, events: Sequence[CloudEvent]) -> list[CloudEvent]:
        """Accept events through the loop guard (`eventing.broker_ttl`); when this returns the admitted
        ones are durable for this backend. Returns the events dropped because their TTL ran out (each
        counted and logged)."""
        accepted: list[CloudEvent] = []
        dropped: list[CloudEvent] = []
        for event in events:
            passed = broker_ttl.admitted(event)
            if passed is None:
                dropped.append(event)
            else:
                accepted.append(passed)
        for event in dropped:
            metrics.events_dropped.labels(self.name, TTL_EXPIRED).inc()
            log.warning(
                "event dropped: its %s reached 0, it has passed through the broker as often as it may "
                "(an event loop?)",
                broker_ttl.TTL_EXTENSION,
                extra=log_fields(event_id=event.id, event_type=event.type, event_source=event.source),
            )
        if accepted:
            self._store(accepted)
            for observe in list(self.observers):
                observe(accepted)
        return dropped

    @abc.abstractmethod
    def _store(self, events: Sequence[CloudEvent]) -> None:
        """Keep admitted events for the triggers; durable for this backend when it returns."""

    def set_trigger(self, trigger: Trigger) -> None:
        """Add a trigger or replace the one of the same name; TriggerError when it cannot start (the
        previous one of that name then runs on, as before)."""
        with self._lock:
            previous = self._triggers.get(trigger.name)
            if previous == trigger:
                return
            in_use = sum(t.parallelism for t in self._triggers.values() if t.name != trigger.name)
            if in_use + trigger.parallelism > MAX_DELIVERY_WORKERS:
                raise TriggerRefused(
                    f"trigger {trigger.name} needs {trigger.parallelism} delivery workers (its parallelism), "
                    f"but the triggers together may have {MAX_DELIVERY_WORKERS} and {in_use} are taken"
                )
            if previous is not None:
                self._stop_trigger(previous)
                del self._triggers[trigger.name]
            try:
                self._start_trigger(trigger, previous)
            except Exception as exc:
                log.error("trigger %s could not be started: %s", trigger.name, exc)
                if previous is not None:
                    self._restart(previous)
                raise TriggerError(f"trigger {trigger.name} could not be started: {_reason(exc)}") from exc
            self._triggers[trigger.name] = trigger

    def _restart(self, trigger: Trigger) -> None:
        try:
            self._start_trigger(trigger, None)
        except Exception as exc:  # it stays stopped; its stored form starts again on the next start
            log.error("trigger %s could not be restarted after a failed change: %s", trigger.name, exc)
            return
        self._triggers[trigger.name] = trigger

    def remove_trigger(self, name: str) -> bool:
        """Remove a trigger and its backlog; False when there was none of that name."""
        with self._lock:
            trigger = self._triggers.pop(name, None)
            if trigger is None:
                return False
            try:
                self._stop_trigger(trigger, purge=True)
            except Exception as exc:
                raise TriggerError(f"trigger {name} was stopped, but {_reason(exc)}") from exc
            return True

    def triggers(self) -> list[Trigger]:
        with self._lock:
            return sorted(self._triggers.values(), key=lambda t: t.name)

    @abc.abstractmethod
    def _start_trigger(self, trigger: Trigger, previous: Trigger | None) -> None:
        """Start delivering to `trigger` (replacing the stopped `previous` of its name, if any); on any
        failure, leave nothing of it running and raise."""

    @abc.abstractmethod
    def _stop_trigger(self, trigger: Trigger, purge: bool = False) -> None: ...

    def log_unclaimed(self) -> None:
        """Once the platform has set its triggers: report events kept for triggers that are not set
        (a durable backend keeps them; the others have none)."""
        return None

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


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300] if str(exc) else type(exc).__name__
