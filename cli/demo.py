"""`datafrost dev --demo`: show a newcomer events flowing, right after start."""

from __future__ import annotations

from cli.common import fail_unless, request_json
from eventing.client import send_event
from eventing.cloudevent import new_event

DEMO_TYPE = "io.datafrost.demo.greeting"


def run_demo(url: str) -> None:
    """Route demo events to event-display and send three of them."""
    status, body = request_json(
        "POST",
        f"{url}/brokers/default/triggers",
        {"name": "demo-display", "subscriber": f"{url}/event-display/", "filter": {"type": DEMO_TYPE}},
    )
    fail_unless(status, body, 201)
    for n in range(1, 4):
        send_event(
            f"{url}/brokers/default", new_event(DEMO_TYPE, "datafrost/demo", {"n": n, "hello": "world"})
        )
    print(f"demo: sent 3 events of type {DEMO_TYPE}; see them at {url}/event-display/events")
