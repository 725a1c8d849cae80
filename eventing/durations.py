"""ISO 8601 durations as Knative's delivery spec writes them (PT0.2S, PT30S, P1DT2H)."""

from __future__ import annotations

import re

_DURATION = re.compile(
    r"^P(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)
_UNIT_SECONDS = {"days": 86400.0, "hours": 3600.0, "minutes": 60.0, "seconds": 1.0}


def parse_duration(text: str) -> float:
    """Seconds in an ISO 8601 duration; ValueError names the bad input."""
    match = _DURATION.match(text.strip())
    if not match or text.strip() in ("P", "PT") or text.strip().endswith("T"):
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise ValueError(f"not an ISO 8601 duration: {shown!r} (expected e.g. PT0.2S, PT30S, PT1M)")
    return sum(float(v) * _UNIT_SECONDS[k] for k, v in match.groupdict().items() if v)


def format_duration(seconds: float) -> str:
    """The shortest PT..S form Knative accepts for a number of seconds."""
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return f"PT{text}S"
