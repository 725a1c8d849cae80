"""What a database column can hold, checked before a value reaches SQL.

PostgreSQL refuses an integer outside its column's range, a NUL character in text and a string longer
than a VARCHAR's length; psycopg cannot even send an unpaired surrogate; SQLite overflows past 64 bits.
Each of those is a database error, a 500, unless the value is checked first: these checks say why in
words a 400 (or a refused event) can carry.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Column, Integer, String

INTEGER_MIN, INTEGER_MAX = -(2**31), 2**31 - 1  # PostgreSQL INTEGER
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1  # PostgreSQL BIGINT, SQLite INTEGER


def text_problem(value: str) -> str | None:
    """Why PostgreSQL text cannot hold `value` (a NUL, an unpaired surrogate), or None when it can."""
    if "\x00" in value:
        return "contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"contains an unpaired surrogate U+{ord(value[exc.start]):04X}"
    return None


def column_length(column: Column[Any]) -> int:
    """The most characters a VARCHAR column holds."""
    length = getattr(column.type, "length", None)
    if not isinstance(length, int):
        raise TypeError(f"column {column.name} has no length")
    return length


def integer_range(column: Column[Any]) -> tuple[int, int] | None:
    """The values an integer column holds (None for a column of another type)."""
    if isinstance(column.type, BigInteger):
        return BIGINT_MIN, BIGINT_MAX
    if isinstance(column.type, Integer):
        return INTEGER_MIN, INTEGER_MAX
    return None


def column_problem(column: Column[Any], value: Any) -> str | None:
    """Why `column` cannot hold `value`, or None when it can (or the type is not one checked here)."""
    if value is None:
        return None
    bounds = integer_range(column)
    if bounds is not None:
        if not isinstance(value, int) or isinstance(value, bool):
            return f"must be an integer, got {type(value).__name__}"
        low, high = bounds
        return None if low <= value <= high else f"is {value}, outside {low}..{high}"
    if isinstance(column.type, String) and isinstance(value, str):  # Text is a String without a length
        length = getattr(column.type, "length", None)
        if length is not None and len(value) > length:
            return f"is {len(value)} characters long, over the limit of {length}"
        return text_problem(value)
    return None
