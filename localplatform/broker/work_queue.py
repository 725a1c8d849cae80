"""A trigger's work for its delivery threads: new items in arrival order, and retries that wait out
their backoff here, holding no thread, until they are due.

eventing-rabbitmq's dispatcher (pkg/dispatcher/dispatcher.go) retries in-process: the worker that took
a message sleeps through each backoff (cloudevents sdk-go `RequestWithRetries`), so a failing event
keeps one of the trigger's `parallelism` workers, and with parallelism 1 the whole queue, for all of its
retries. With parallelism above 1 DataFrost schedules the retry instead (`put_later`) and the worker
takes the next item; the item still counts as held (`len`), so nothing is lost or settled early.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import threading
import time
from typing import Generic, TypeVar

T = TypeVar("T")


class WorkQueue(Generic[T]):
    """Items for a trigger's delivery threads: retries that came due first, then new items in order.

    `get` blocks until an item is ready (a new one, or a retry whose backoff is over) and returns it,
    or returns None once the queue is `finish`ed and drained (scheduled retries included) or
    `abandon`ed. A taken item counts as held until its thread calls `done` or `put_later`.
    """

    def __init__(self) -> None:
        self._ready = threading.Condition()
        self._fresh: collections.deque[T] = collections.deque()
        self._due: collections.deque[T] = collections.deque()  # retries whose backoff is over
        self._waiting: list[tuple[float, int, T]] = []  # (due at, tie-break, item): a heap
        self._order = itertools.count()
        self._taken = 0  # with a delivery thread right now
        self._finished = False
        self._abandoned = False

    def put(self, item: T) -> None:
        with self._ready:
            self._fresh.append(item)
            self._ready.notify()

    def put_later(self, item: T, delay: float) -> bool:
        """Give a taken item back, to be handed out again after `delay` seconds. False once the queue
        is abandoned: the item stays the caller's, to settle as not delivered (and then `done`)."""
        with self._ready:
            if self._abandoned:
                return False
            self._taken -= 1
            heapq.heappush(self._waiting, (time.monotonic() + delay, next(self._order), item))
            self._ready.notify()  # a waiting thread may now have an earlier wake-up time
            return True

    def done(self) -> None:
        """A taken item is finished (delivered, dead-lettered, or given up)."""
        with self._ready:
            self._taken -= 1
            self._ready.notify_all()  # a drained, finished queue lets its threads go

    def get(self) -> T | None:
        with self._ready:
            while True:
                if self._abandoned:
                    return None
                now = time.monotonic()
                while self._waiting and self._waiting[0][0] <= now:
                    self._due.append(heapq.heappop(self._waiting)[2])
                if self._due or self._fresh:
                    self._taken += 1
                    return (self._due or self._fresh).popleft()
                if self._finished and not self._waiting and not self._taken:
                    return None
                self._ready.wait(self._waiting[0][0] - now if self._waiting else None)

    def finish(self) -> None:
        """Nothing new will come: `get` returns None once every item held (retries too) is finished."""
        with self._ready:
            self._finished = True
            self._ready.notify_all()

    def abandon(self) -> list[T]:
        """Stop at once: `get` returns None from now on. Returns the items not taken (new ones and
        scheduled retries), for the caller to settle as not delivered."""
        with self._ready:
            self._abandoned = True
            left = [*self._due, *self._fresh, *(item for _, _, item in sorted(self._waiting))]
            self._due.clear()
            self._fresh.clear()
            self._waiting.clear()
            self._ready.notify_all()
            return left

    def __len__(self) -> int:
        """Items held: not yet taken, waiting out a backoff, or with a delivery thread."""
        with self._ready:
            return len(self._fresh) + len(self._due) + len(self._waiting) + self._taken
