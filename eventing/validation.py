"""Strict CloudEvents 1.0 attribute validation (spec.md 1.0.2), independent of the lenient SDK.

Every failure raises `InvalidEvent` whose text names the attribute and says what is wrong, so the
ingress can answer 400 with it as is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date

from eventing.cloudevent import REQUIRED_ATTRIBUTES, SPECVERSION

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
# Attributes the spec defines; each must be a string in JSON (the extensions may be typed).
STRING_ATTRIBUTES = (*REQUIRED_ATTRIBUTES, "datacontenttype", "dataschema", "subject", "time")

_NAME = re.compile(r"[a-z0-9]+")
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?(?:[Zz]|[+-](\d{2}):(\d{2}))"
)
# RFC 2045 token: printable US-ASCII except space and tspecials ()<>@,;:\"/[]?=
_TOKEN = r"[!#$%&'*+\-.^_`{|}~0-9A-Za-z]+"
_QUOTED = r'"(?:[\t\x20\x21\x23-\x5b\x5d-\x7e]|\\[\t\x20-\x7e])*"'
_MEDIA_TYPE = re.compile(rf"{_TOKEN}/{_TOKEN}(?:[ \t]*;[ \t]*{_TOKEN}=(?:{_TOKEN}|{_QUOTED}))*[ \t]*")
# RFC 3986: the characters a URI-reference may hold, a well-formed %XX, and a scheme.
_URI_CHARS = re.compile(r"(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")


class InvalidEvent(ValueError):
    """The message is not a valid CloudEvent; str() is a reason a person can act on."""


class EventTooLarge(ValueError):
    """The message is over the size limit (HTTP 413)."""


def _show(value: str, limit: int = 60) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")


def _is_noncharacter(code: int) -> bool:
    return 0xFDD0 <= code <= 0xFDEF or (code & 0xFFFE) == 0xFFFE


def check_string(name: str, value: str) -> None:
    """Reject characters the CloudEvents String type disallows (controls, noncharacters, surrogates)."""
    for char in value:
        code = ord(char)
        if code <= 0x1F or 0x7F <= code <= 0x9F:
            raise InvalidEvent(f"attribute {name!r} contains control character U+{code:04X}")
        if 0xD800 <= code <= 0xDFFF:
            raise InvalidEvent(f"attribute {name!r} contains an unpaired surrogate U+{code:04X}")
        if _is_noncharacter(code):
            raise InvalidEvent(f"attribute {name!r} contains Unicode noncharacter U+{code:04X}")


def is_rfc3339(value: str) -> bool:
    """True for an RFC 3339 date-time with seconds and a Z or +hh:mm offset."""
    match = _RFC3339.fullmatch(value)
    if match is None:
        return False
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    try:
        date(year, month, day)
    except ValueError:
        return False
    off_h, off_m = match.group(8), match.group(9)
    offset_ok = off_h is None or (int(off_h) <= 23 and int(off_m) <= 59)
    return hour <= 23 and minute <= 59 and second <= 60 and offset_ok


def is_media_type(value: str) -> bool:
    """True for an RFC 2046 media type: type/subtype with optional `; name=value` parameters."""
    return _MEDIA_TYPE.fullmatch(value) is not None


def is_uri_reference(value: str) -> bool:
    """True for an RFC 3986 URI-reference (absolute or relative)."""
    if _URI_CHARS.fullmatch(value) is None or value.count("#") > 1:
        return False
    head = re.split(r"[/?#]", value, maxsplit=1)[0]
    # A colon in the first segment makes it a scheme, which must then be well formed.
    return ":" not in head or _SCHEME.fullmatch(head.split(":", 1)[0]) is not None


def is_absolute_uri(value: str) -> bool:
    """True for a URI with a scheme (a fragment is tolerated, as the spec's JSON schema does)."""
    head = value.split(":", 1)[0]
    return ":" in value and _SCHEME.fullmatch(head) is not None and is_uri_reference(value)


def _canonical_value(name: str, value: object, from_json: bool) -> str:
    if isinstance(value, str):
        return value
    if not from_json:
        raise InvalidEvent(f"attribute {name!r} must be a string, got {type(value).__name__}")
    if name in STRING_ATTRIBUTES:
        raise InvalidEvent(f"attribute {name!r} must be a string, got {_json_type(value)}")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if not INT32_MIN <= value <= INT32_MAX:
            raise InvalidEvent(f"attribute {name!r} is {value}, outside the 32-bit signed Integer range")
        return str(value)
    if isinstance(value, float):
        raise InvalidEvent(f"attribute {name!r} must be an integer (no fraction or exponent), got {value!r}")
    raise InvalidEvent(
        f"attribute {name!r} must be a string, integer or boolean, got a JSON {_json_type(value)}"
    )


def _json_type(value: object) -> str:
    names = {bool: "boolean", int: "number", float: "number", dict: "object", list: "array"}
    return names.get(type(value), type(value).__name__)


def _check_known(attributes: Mapping[str, str]) -> None:
    for name in REQUIRED_ATTRIBUTES:
        if name not in attributes:
            raise InvalidEvent(f"required attribute {name!r} is missing")
        if attributes[name] == "":
            raise InvalidEvent(f"required attribute {name!r} must not be empty")
    if attributes["specversion"] != SPECVERSION:
        raise InvalidEvent(f"specversion must be {SPECVERSION!r}, got {_show(attributes['specversion'])}")
    if not is_uri_reference(attributes["source"]):
        raise InvalidEvent(f"attribute 'source' must be a URI-reference, got {_show(attributes['source'])}")
    for name in ("subject", "dataschema"):
        if attributes.get(name) == "":
            raise InvalidEvent(f"attribute {name!r} is present but empty")
    if "dataschema" in attributes and not is_absolute_uri(attributes["dataschema"]):
        raise InvalidEvent(
            f"attribute 'dataschema' must be an absolute URI, got {_show(attributes['dataschema'])}"
        )
    if "time" in attributes and not is_rfc3339(attributes["time"]):
        raise InvalidEvent(
            "attribute 'time' must be an RFC 3339 timestamp with a timezone offset "
            f"(e.g. 2024-01-01T00:00:00Z), got {_show(attributes['time'])}"
        )
    content_type = attributes.get("datacontenttype")
    if content_type is not None and not is_media_type(content_type):
        raise InvalidEvent(
            f"attribute 'datacontenttype' must be an RFC 2046 media type like 'application/json', "
            f"got {_show(content_type)}"
        )


def canonical_attributes(raw: Mapping[str, object], *, from_json: bool) -> dict[str, str]:
    """Validate context attributes and return them as canonical strings.

    `from_json`: values come from a JSON object (null means absent; extensions may be integers or
    booleans). Otherwise every value must already be a string (binary-mode headers). `raw` must not
    hold the `data` / `data_base64` members.
    """
    attributes: dict[str, str] = {}
    for name, value in raw.items():
        if not _NAME.fullmatch(name):
            raise InvalidEvent(
                f"attribute name {_show(name)} is invalid: names are lower-case letters a-z and digits 0-9"
            )
        if name == "data":
            raise InvalidEvent("attribute name 'data' is reserved")
        if value is None and from_json:
            continue
        text = _canonical_value(name, value, from_json)
        check_string(name, text)
        attributes[name] = text
    _check_known(attributes)
    return attributes
