"""Triggers: exact-match attribute filters, a subscriber and a delivery spec (Knative's Trigger).

Every field is bounded. Knative sets some bounds (a DNS-1123 label for the name, `retry >= 0`, a
positive timeout, eventing-rabbitmq's parallelism annotation from 1 to 1000, CloudEvents attribute
names for the filter); where it sets none, DataFrost caps at a value no delivery needs (the constants
below), so no number can start thousands of threads, overflow a timer or wait for centuries. A value
out of bounds is a ValueError whose text names the field and its bound.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from eventing.cloudevent import CloudEvent
from eventing.durations import format_duration, parse_duration
from eventing.sinks import url_problem

BackoffPolicy = Literal["exponential", "linear"]
BACKOFF_POLICIES = ("exponential", "linear")
TRIGGER_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # Kubernetes DNS-1123 label
MIN_PARALLELISM, MAX_PARALLELISM = 1, 1000  # eventing-rabbitmq's `rabbitmq.eventing.knative.dev/parallelism`
MAX_RETRY = 100  # Knative: any int32 >= 0; 100 retries outlast any outage a backoff can wait for
MAX_BACKOFF_DELAY_SECONDS = 3600.0  # PT1H: the base delay (Knative: any ISO 8601 duration)
MAX_BACKOFF_WAIT_SECONDS = 86400.0  # P1D: one wait, however far exponential backoff has grown
MAX_TIMEOUT_SECONDS = 600.0  # PT10M: Knative Serving's default max-revision-timeout-seconds
MAX_FILTER_ATTRIBUTES = 20
FILTER_NAME = re.compile(r"[a-z0-9]{1,20}")  # CloudEvents: a-z, 0-9; SHOULD NOT exceed 20 characters
MAX_FILTER_VALUE_CHARS = 4096
TRIGGER_FIELDS = ("name", "subscriber", "filter", "delivery", "parallelism")


def _check_integer(name: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        shown = value if isinstance(value, int) and not isinstance(value, bool) else repr(value)[:40]
        raise ValueError(f"{name} must be an integer from {low} to {high}, got {shown}")


def _check_seconds(name: str, value: object, high: float, zero_allowed: bool) -> None:
    bound = f"{'from 0' if zero_allowed else 'more than 0'} to {format_duration(high)}"
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"{name} must be a duration {bound}, got {repr(value)[:40]}")
    if not math.isfinite(value) or value < 0 or value > high or (value == 0 and not zero_allowed):
        raise ValueError(f"{name} must be a duration {bound}, got {value:g} seconds")


def _check_sink(name: str, url: object) -> None:
    problem = url_problem(url) if isinstance(url, str) else "must be an http(s) URL"
    if problem is not None:
        raise ValueError(f"{name} {problem}")


@dataclass(frozen=True)
class DeliverySpec:
    """Knative's `spec.delivery`: retries, backoff, timeout and dead-letter sink."""

    retry: int = 5
    backoff_policy: BackoffPolicy = "exponential"
    backoff_delay: float = 0.2  # seconds
    timeout: float = 30.0  # seconds per attempt
    dead_letter_sink: str | None = None

    def __post_init__(self) -> None:
        _check_integer("delivery.retry", self.retry, 0, MAX_RETRY)
        if self.backoff_policy not in BACKOFF_POLICIES:
            raise ValueError(
                f"delivery.backoff_policy must be exponential or linear, got {repr(self.backoff_policy)[:40]}"
            )
        _check_seconds("delivery.backoff_delay", self.backoff_delay, MAX_BACKOFF_DELAY_SECONDS, True)
        _check_seconds("delivery.timeout", self.timeout, MAX_TIMEOUT_SECONDS, False)
        if self.dead_letter_sink is not None:
            _check_sink("delivery.dead_letter_sink", self.dead_letter_sink)

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt `attempt` (1-based), as Knative computes it (capped at
        MAX_BACKOFF_WAIT_SECONDS)."""
        if self.backoff_policy == "linear":
            wait = self.backoff_delay * attempt
        else:
            wait = self.backoff_delay * 2 ** min(attempt, MAX_RETRY + 1)
        return min(wait, MAX_BACKOFF_WAIT_SECONDS)


def _check_filter(filters: object) -> None:
    if not isinstance(filters, Mapping):
        raise ValueError("filter must be an object of attribute names to values")
    if len(filters) > MAX_FILTER_ATTRIBUTES:
        raise ValueError(f"filter has {len(filters)} attributes, over the limit of {MAX_FILTER_ATTRIBUTES}")
    for name, value in filters.items():
        if not isinstance(name, str) or not FILTER_NAME.fullmatch(name):
            raise ValueError(
                f"filter attribute {repr(name)[:40]} must be a CloudEvents attribute name: "
                "lower-case letters a-z and digits 0-9, at most 20 characters"
            )
        if not isinstance(value, str):
            raise ValueError(f"filter value of {name} must be a string, got {type(value).__name__}")
        if len(value) > MAX_FILTER_VALUE_CHARS:
            raise ValueError(
                f"filter value of {name} is {len(value)} characters long, over the limit of "
                f"{MAX_FILTER_VALUE_CHARS}"
            )
        if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in value):
            raise ValueError(f"filter value of {name} contains a control character")


@dataclass(frozen=True)
class Trigger:
    """A subscription of `subscriber` to the events whose attributes equal every `filter` entry."""

    name: str
    subscriber: str
    filter: Mapping[str, str] = field(default_factory=dict)
    delivery: DeliverySpec = field(default_factory=DeliverySpec)
    parallelism: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not TRIGGER_NAME.match(self.name):
            raise ValueError(
                f"trigger name {repr(self.name)[:80]} must be a DNS label "
                "(a-z, 0-9, '-', at most 63 characters, starting and ending with a letter or digit)"
            )
        _check_sink("subscriber", self.subscriber)
        _check_filter(self.filter)
        if not isinstance(self.delivery, DeliverySpec):
            raise ValueError("delivery must be a delivery spec")
        _check_integer("parallelism", self.parallelism, MIN_PARALLELISM, MAX_PARALLELISM)

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
    def from_json(cls, raw: object) -> Trigger:
        """Parse the JSON form (the trigger API and triggers.json); ValueError names what is wrong."""
        if not isinstance(raw, Mapping):
            raise ValueError("a trigger must be a JSON object")
        unknown = set(raw) - set(TRIGGER_FIELDS)
        if unknown:
            raise ValueError(f"unknown trigger field(s): {', '.join(sorted(map(str, unknown)))[:200]}")
        missing = [k for k in ("name", "subscriber") if not raw.get(k)]
        if missing:
            raise ValueError(f"trigger is missing {', '.join(missing)}")
        delivery_raw = raw.get("delivery") or {}
        if not isinstance(delivery_raw, Mapping):
            raise ValueError("delivery must be an object")
        delivery_raw = dict(delivery_raw)
        unknown = set(delivery_raw) - set(DeliverySpec.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown delivery field(s): {', '.join(sorted(map(str, unknown)))[:200]}")
        for key in ("backoff_delay", "timeout"):
            if isinstance(delivery_raw.get(key), str):
                try:
                    delivery_raw[key] = parse_duration(delivery_raw[key])
                except ValueError as exc:
                    raise ValueError(f"delivery.{key}: {exc}") from None
        filters = raw.get("filter") or {}
        _check_filter(filters)
        return cls(
            name=raw["name"],
            subscriber=raw["subscriber"],
            filter=dict(filters),
            delivery=DeliverySpec(**delivery_raw),
            parallelism=raw.get("parallelism", 1),
        )

    def with_delivery(self, **changes: Any) -> Trigger:
        return replace(self, delivery=replace(self.delivery, **changes))
