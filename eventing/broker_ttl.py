"""Knative's broker loop guard: the `knativebrokerttl` extension counts the passes an event may still
make through a broker ingress.

As knative/eventing does it (pkg/broker/ttl.go `TTLDefaulter`, applied by the broker ingress,
cmd/broker/ingress `MAX_TTL` default 255; pkg/broker/ingress/ingress_handler.go drops an event whose
TTL is then <= 0; pkg/broker/filter/filter_handler.go gives a reply the TTL of the event it answers):
an event without the extension (or with one that is not an integer) gets 255; one with it is
decremented, never below 0; at 0 it is dropped. A reply carries the TTL of the event it answers,
whatever the subscriber wrote, so a chain of replies ends.

DataFrost differs in two ways, both to make the guard hold for any path back to the ingress: the
extension stays on the event delivered to the subscriber (Knative's filter strips it, so a sink that
re-posts the event to the ingress would start again at 255), and an arriving TTL above 255 is
lowered to 255 (so a sender cannot buy a near-endless loop).
"""

from __future__ import annotations

import re

from eventing.cloudevent import CloudEvent

TTL_EXTENSION = "knativebrokerttl"
MAX_TTL = 255  # Knative's broker ingress MAX_TTL default: the passes a new event may make
_INTEGER = re.compile(r"-?[0-9]{1,12}")


def ttl_of(event: CloudEvent) -> int | None:
    """The event's TTL, None when it has none or one that is not an integer."""
    raw = event.get(TTL_EXTENSION)
    return int(raw) if raw is not None and _INTEGER.fullmatch(raw) else None


def admitted(event: CloudEvent) -> CloudEvent | None:
    """The event as a broker ingress admits it (TTL set, or decremented), None when its TTL ran out."""
    ttl = ttl_of(event)
    ttl = MAX_TTL if ttl is None else min(ttl - 1, MAX_TTL)
    if ttl <= 0:
        return None
    return event.with_attributes(**{TTL_EXTENSION: str(ttl)})


def reply_to(delivered: CloudEvent, reply: CloudEvent) -> CloudEvent:
    """`reply` carrying the TTL of the event it answers (the subscriber's own value never counts)."""
    attributes = {k: v for k, v in reply.attributes.items() if k != TTL_EXTENSION}
    ttl = delivered.get(TTL_EXTENSION)
    if ttl is not None:
        attributes[TTL_EXTENSION] = ttl
    return CloudEvent(attributes, reply.data)
