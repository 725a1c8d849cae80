"""A process running a durable local broker, for tests that SIGKILL it mid-delivery.

`python -m tests.support.durable_child PATH SINK_URL RETRY COUNT`: opens the broker's file at PATH,
sets `sink_trigger(SINK_URL, RETRY)` and publishes COUNT events one at a time, printing each id once
`publish` returned (accepted); then delivers until it is killed.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from eventing.cloudevent import new_event
from eventing.trigger import DeliverySpec, Trigger
from localplatform.broker.durable import DurableBroker

TYPE = "io.datafrost.test.durable"


def sink_trigger(url: str, retry: int) -> Trigger:
    """The one trigger of these tests: to the sink, linear backoff of 20 ms, no dead-letter sink."""
    return Trigger("to-sink", url, {"type": TYPE}, DeliverySpec(retry, "linear", 0.02, 5.0, None))


def main(argv: list[str]) -> None:
    path, url, retry, count = Path(argv[0]), argv[1], int(argv[2]), int(argv[3])
    broker = DurableBroker(path, "child")
    broker.set_trigger(sink_trigger(url, retry))
    for i in range(count):
        event_id = f"durable-{i}"
        broker.publish([new_event(TYPE, "/tests/durable", {"n": i}, id=event_id)])
        print(event_id, flush=True)
    print("published", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1:])
