"""JSON from outside the process, parsed with a bound on its nesting depth.

The json module recurses once per level: a body of 100,000 `[` raises RecursionError (not the
ValueError a parse error is), and a value a few hundred levels deep parses but may not encode again.
`loads` refuses both with `JsonTooDeep`, a ValueError like every other parse error, so a caller that
turns ValueError into a 400 (or an InvalidEvent, or a refused event) handles deep JSON too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

MAX_DEPTH = 64  # arrays and objects inside one another; DataFrost's own payloads nest 4 deep at most


class JsonTooDeep(ValueError):
    """The JSON nests arrays and objects deeper than allowed."""


def depth(value: Any) -> int:
    """How deep arrays and objects nest in a decoded value (a scalar is 0), without recursion."""
    deepest = 0
    pending = [(value, 1)]
    while pending:
        item, level = pending.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        pending.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return deepest


def loads(
    text: str | bytes,
    *,
    max_depth: int = MAX_DEPTH,
    parse_constant: Callable[[str], Any] | None = None,
) -> Any:
    """`json.loads`, refusing JSON nested deeper than `max_depth` (JsonTooDeep, a ValueError)."""
    too_deep = JsonTooDeep(f"JSON nested more than {max_depth} levels deep")
    try:
        value = json.loads(text, parse_constant=parse_constant)
    except RecursionError:
        raise too_deep from None
    if _openings(text) > max_depth and depth(value) > max_depth:  # fewer brackets cannot nest deeper
        raise too_deep
    return value


def _openings(text: str | bytes) -> int:
    """How many `[` and `{` the text holds (inside strings too): a cheap upper bound on the depth."""
    if isinstance(text, bytes):
        return text.count(b"[") + text.count(b"{")
    return text.count("[") + text.count("{")
