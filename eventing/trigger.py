"""Triggers: exact-match attribute filters, a subscriber and a delivery spec (Knative's Trigger)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from eventing.cloudevent import CloudEvent
from eventing.durations import format_duration, parse_duration

BackoffPolicy = Literal["exponential", "linear"]
TRIGGER_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
MAX_RETRY = 1000  # exponential backoff waits centuries long before that; linear ones still end
MAX_PARALLELISM = 1000  # delivery workers per trigger (threads, and a prefetch count, locally)


def _is_int(value: object) -> bool:
    """An int that is not a bool (JSON's true is not 1 here)."""
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class DeliverySpec:
    """Knative's `spec.delivery`: retries, backoff, timeout and dead-letter sink."""

    retry: int = 5
    backoff_policy: BackoffPolicy = "exponential"
    backoff_delay: float = 0.2  # seconds
    timeout: float = 30.0  # seconds per attempt
    dead_letter_sink: str | None = None

    def __post_init__(self) -> None:
        if not _is_int(self.retry) or not 0 <= self.retry <= MAX_RETRY:
            raise ValueError(f"retry must be an integer from 0 to {MAX_RETRY}, got {self.retry!r}")
        if self.backoff_policy not in ("exponential", "linear"):
            raise ValueError(f"backoff policy must be exponential or linear, got {self.backoff_policy!r}")
        for name in ("backoff_delay", "timeout"):
            if not isinstance(getattr(self, name), int | float) or isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be an ISO 8601 duration or a number of seconds")
        if self.backoff_delay < 0 or self.timeout <= 0:
            raise ValueError("backoff delay must be >= 0 and timeout > 0")
        if self.dead_letter_sink is not None and not isinstance(self.dead_letter_sink, str):
            raise ValueError("dead_letter_sink must be a URL")

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt `attempt` (1-based), as Knative computes it."""
        if self.backoff_policy == "linear":
            return self.backoff_delay * attempt
        return self.backoff_delay * 2**attempt


@dataclass(frozen=True)
class Trigger:
    """A subscription of `subscriber` to the events whose attributes equal every `filter` entry."""

    name: str
    subscriber: str
    filter: Mapping[str, str] = field(default_factory=dict)
    delivery: DeliverySpec = field(default_factory=DeliverySpec)
    parallelism: int = 1

    def __post_init__(self) -> None:
        if not TRIGGER_NAME.match(self.name):
            raise ValueError(f"trigger name {self.name!r} must be a DNS label (a-z, 0-9, '-')")
        if not _is_int(self.parallelism) or not 1 <= self.parallelism <= MAX_PARALLELISM:
            raise ValueError(
                f"parallelism must be an integer from 1 to {MAX_PARALLELISM}, got {self.parallelism!r}"
            )
        if not self.subscriber.startswith(("http://", "https://")):
            raise ValueError(f"subscriber must be an http(s) URL, got {self.subscriber!r}")

    def matches(self, event: CloudEvent) -> bool:
        """Exact, case-sensitive match on every filter attribute (AND), as `filter.attributes`."""
        attributes = event.attributes
        return all(attributes.get(k) == v for k, v in self.filter.items())

    def to_json(self) -> dict[str, Any]:
        delivery = asdict(self.delivery)
        delivery["backoff_delay"] = format_duration(self.delivery.backoff_delay)
        delivery["timeout"] = format_duration(self.delivery.timeout)
        return {
            "name": self.name,
            "subscriber": self.subscriber,
            "filter": dict(self.filter),
            "delivery": delivery,
            "parallelism": self.parallelism,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Trigger:
        """Parse the JSON form (the trigger API and triggers.json); ValueError names what is wrong."""
        if not isinstance(raw, Mapping):
            raise ValueError("a trigger must be a JSON object")
        missing = [k for k in ("name", "subscriber") if not raw.get(k)]
        if missing:
            raise ValueError(f"trigger is missing {', '.join(missing)}")
        filters = raw.get("filter") or {}
        if not isinstance(filters, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in filters.items()
        ):
            raise ValueError("filter must be an object of string attribute names to string values")
        delivery_raw = dict(raw.get("delivery") or {})
        for key in ("backoff_delay", "timeout"):
            if isinstance(delivery_raw.get(key), str):
                delivery_raw[key] = parse_duration(delivery_raw[key])
        unknown = set(delivery_raw) - set(DeliverySpec.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown delivery field(s): {', '.join(sorted(unknown))}")
        return cls(
            name=str(raw["name"]),
            subscriber=str(raw["subscriber"]),
            filter=dict(filters),
            delivery=DeliverySpec(**delivery_raw),
            parallelism=raw.get("parallelism", 1),
        )

    def with_delivery(self, **changes: Any) -> Trigger:
        return replace(self, delivery=replace(self.delivery, **changes))
