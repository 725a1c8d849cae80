"""Request parameters (query strings, path segments) parsed strictly, to values a database column holds.

Integers are ASCII digits only (`str.isdigit` also takes superscripts, which `int` refuses, and
other scripts' digits, which `int` reads), within the range the caller gives: for a filter, its
column's range (`shared.sql_values`). Text must be text PostgreSQL can hold, within a length.
Anything else is a `ParameterError`: a 400 whose message starts with the parameter's name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from shared.errors import HttpError
from shared.sql_values import text_problem

_DIGITS = re.compile(r"[0-9]+")
SHOWN_CHARS = 40  # of a bad value, echoed in the error


class ParameterError(HttpError):
    """A parameter with a value that cannot be used; `parameter` names it."""

    status = 400

    def __init__(self, parameter: str, problem: str) -> None:
        super().__init__(f"{parameter} {problem}")
        self.parameter = parameter


def shown(raw: str) -> str:
    """The value as an error message quotes it: repr, cut short."""
    return repr(raw if len(raw) <= SHOWN_CHARS else raw[:SHOWN_CHARS] + "...")


def integer(name: str, raw: str, low: int, high: int) -> int:
    """`raw` as an integer from `low` to `high` (both >= 0): plain ASCII digits, nothing else."""
    significant = raw.lstrip("0") or "0"
    if _DIGITS.fullmatch(raw) and len(significant) <= len(str(high)) and low <= int(significant) <= high:
        return int(significant)
    raise ParameterError(name, f"must be an integer from {low} to {high}, got {shown(raw)}")


def text(name: str, raw: str, max_length: int) -> str:
    """`raw` when a text column can hold it and it is at most `max_length` characters."""
    if len(raw) > max_length:
        raise ParameterError(name, f"must be at most {max_length} characters, got {len(raw)}")
    problem = text_problem(raw)
    if problem is not None:
        raise ParameterError(name, f"{problem}: {shown(raw)}")
    return raw


def optional_integer(args: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """An integer parameter; `default` when it is absent or empty."""
    raw = args.get(name)
    return integer(name, raw, low, high) if raw else default


def optional_integer_or_none(args: Mapping[str, str], name: str, low: int, high: int) -> int | None:
    """An integer parameter; None when it is absent or empty."""
    raw = args.get(name)
    return integer(name, raw, low, high) if raw else None


def optional_text(args: Mapping[str, str], name: str, max_length: int) -> str | None:
    """A text parameter; None when it is absent or empty."""
    raw = args.get(name)
    return text(name, raw, max_length) if raw else None
