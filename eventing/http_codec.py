"""CloudEvents over HTTP: binary, structured and batched modes (http-protocol-binding.md, json-format.md).

Decoding is strict (see `eventing.validation`); encoding writes what the binding requires, so that
`parse_http(*to_binary(e)) == [e]` and `parse_http(*to_structured(e)) == [e]`.

Choices where the spec leaves room: a structured `data` member without `datacontenttype` is taken as
`application/json` and that type is set on the event (json-format.md 3.1.2 SHOULD); the encoder
writes `data` as a JSON value only when `datacontenttype` is JSON and the bytes are exactly the
compact encoding of their value, else `data_base64`, so no bytes are ever changed. An empty binary
body means no data.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from eventing.cloudevent import JSON_CONTENT_TYPE, CloudEvent
from eventing.validation import EventTooLarge, InvalidEvent, canonical_attributes
from shared import safe_json

STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
_PREFIX = "ce-"


class HeaderSource(Protocol):
    """Anything with items(): a dict, werkzeug `Headers`/`EnvironHeaders`, urllib3 `HTTPHeaderDict`."""

    def items(self) -> Iterable[tuple[str, str]]: ...


def _lower_headers(headers: HeaderSource) -> dict[str, str]:
    """Header names lower-cased; a CloudEvents header or Content-Type given twice is rejected."""
    lowered: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        if key in lowered and (key.startswith(_PREFIX) or key == "content-type"):
            raise InvalidEvent(f"header {name!r} is given more than once")
        lowered[key] = value
    return lowered


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _charset(content_type: str) -> str | None:
    for param in content_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip('"').lower()
    return None


def is_json_content_type(content_type: str | None) -> bool:
    """True for `*/json` and `*/*+json` media types (json-format.md 3.1.1)."""
    subtype = _media_type(content_type).partition("/")[2]
    return subtype == "json" or subtype.endswith("+json")


def _compact_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _check_charset(content_type: str) -> None:
    charset = _charset(content_type)
    if charset not in (None, "utf-8", "utf8"):
        raise InvalidEvent(f"JSON event formats must be UTF-8, got charset={charset}")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _load_json(body: bytes) -> Any:
    try:
        return safe_json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        raise InvalidEvent(f"body is not valid UTF-8: {exc.reason} at byte {exc.start}") from None
    except ValueError as exc:  # json.JSONDecodeError, NaN/Infinity, or nested too deep
        raise InvalidEvent(f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidEvent("body is JSON nested too deeply to read") from None


def event_from_json(obj: object) -> CloudEvent:
    """One event in the JSON format (a decoded JSON object) to a CloudEvent."""
    if not isinstance(obj, dict):
        raise InvalidEvent(f"a structured CloudEvent must be a JSON object, got {type(obj).__name__}")
    raw = dict(obj)
    has_data = "data" in raw
    data_value = raw.pop("data", None)
    data_base64 = raw.pop("data_base64", None)
    attributes = canonical_attributes(raw, from_json=True)
    content_type = attributes.get("datacontenttype")
    if has_data and data_base64 is not None:
        raise InvalidEvent("'data' and 'data_base64' must not both be present")
    data: bytes | None = None
    if data_base64 is not None:
        if not isinstance(data_base64, str):
            raise InvalidEvent("'data_base64' must be a base64 string")
        try:
            data = base64.b64decode(data_base64, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidEvent("'data_base64' is not valid base64") from None
    elif has_data:
        if content_type is None:
            attributes["datacontenttype"] = content_type = JSON_CONTENT_TYPE
        if is_json_content_type(content_type):
            data = _compact_json(data_value)
        elif isinstance(data_value, str):
            data = data_value.encode("utf-8")
        else:
            raise InvalidEvent(
                f"'data' must be a string when datacontenttype {content_type!r} is not JSON; "
                "use data_base64 for binary data"
            )
    return CloudEvent(attributes, data)


def parse_structured(body: bytes) -> CloudEvent:
    """A body in the JSON event format (`application/cloudevents+json`) to a CloudEvent."""
    return event_from_json(_load_json(body))


def _parse_batch(body: bytes) -> list[CloudEvent]:
    items = _load_json(body)
    if not isinstance(items, list):
        raise InvalidEvent(f"a CloudEvents batch must be a JSON array, got {type(items).__name__}")
    events = []
    for index, item in enumerate(items):
        try:
            events.append(event_from_json(item))
        except InvalidEvent as exc:
            raise InvalidEvent(f"event [{index}] of the batch: {exc}") from None
    return events


def _unquote(value: str) -> str:
    """Undo RFC 7230 quoted-strings (with backslash escapes) anywhere in a header value."""
    if '"' not in value:
        return value
    out: list[str] = []
    quoted = escaped = False
    for char in value:
        if escaped:
            out.append(char)
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        else:
            out.append(char)
    if quoted or escaped:
        raise ValueError("unterminated double-quoted string")
    return "".join(out)


def percent_decode(value: str) -> str:
    """Decode a binary-mode header value: quoted-strings, then one round of %XX as UTF-8."""
    text = _unquote(value.strip(" \t"))
    raw = bytearray()
    i = 0
    while i < len(text):
        char = text[i]
        if char == "%":
            pair = text[i + 1 : i + 3]
            if len(pair) != 2 or not all(c in "0123456789abcdefABCDEF" for c in pair):
                raise ValueError(f"malformed percent-encoding {text[i : i + 3]!r}")
            raw.append(int(pair, 16))
            i += 3
            continue
        if not " " <= char <= "~":
            raise ValueError(f"character U+{ord(char):04X} must be percent-encoded")
        raw.append(ord(char))
        i += 1
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("percent-encoded bytes are not valid UTF-8") from None


def percent_encode(value: str) -> str:
    """Encode an attribute value for a header: space, '"', '%' and all but printable ASCII."""
    return "".join(
        char if "!" <= char <= "~" and char not in '"%' else "".join(f"%{b:02X}" for b in char.encode())
        for char in value
    )


def _parse_binary(headers: Mapping[str, str], body: bytes) -> CloudEvent:
    raw: dict[str, str] = {}
    for key, value in headers.items():
        if not key.startswith(_PREFIX):
            continue
        name = key[len(_PREFIX) :]
        if name == "datacontenttype":
            raise InvalidEvent("header 'ce-datacontenttype' is not allowed in binary mode; use Content-Type")
        try:
            raw[name] = percent_decode(value)
        except ValueError as exc:
            raise InvalidEvent(f"header {key!r}: {exc}") from None
    if "specversion" not in raw:
        raise InvalidEvent(
            "not a CloudEvent: no ce-specversion header and Content-Type is not "
            f"{STRUCTURED_CONTENT_TYPE} or {BATCH_CONTENT_TYPE}"
        )
    content_type = headers.get("content-type", "").strip()
    if content_type:
        raw["datacontenttype"] = content_type
    return CloudEvent(canonical_attributes(raw, from_json=False), body or None)


def parse_http(
    headers: Mapping[str, str] | HeaderSource, body: bytes, *, max_bytes: int, allow_batch: bool = True
) -> list[CloudEvent]:
    """Decode an HTTP request or response into its CloudEvents (binary, structured or batched)."""
    if len(body) > max_bytes:
        raise EventTooLarge(f"body is {len(body)} bytes, over the limit of {max_bytes} bytes")
    lowered = _lower_headers(headers)
    content_type = lowered.get("content-type", "")
    media_type = _media_type(content_type)
    if media_type.startswith("application/cloudevents-batch"):
        if media_type != BATCH_CONTENT_TYPE:
            raise InvalidEvent(f"unsupported batch format {media_type!r}; use {BATCH_CONTENT_TYPE}")
        if not allow_batch:
            raise InvalidEvent("batched CloudEvents are not accepted here; send one event")
        _check_charset(content_type)
        return _parse_batch(body)
    if media_type.startswith("application/cloudevents"):
        if media_type != STRUCTURED_CONTENT_TYPE:
            raise InvalidEvent(f"unsupported event format {media_type!r}; use {STRUCTURED_CONTENT_TYPE}")
        _check_charset(content_type)
        return [parse_structured(body)]
    return [_parse_binary(lowered, body)]


def to_binary(event: CloudEvent) -> tuple[dict[str, str], bytes]:
    """Binary mode: `ce-` headers (percent-encoded), Content-Type from datacontenttype, data as body."""
    headers = {
        _PREFIX + name: percent_encode(value)
        for name, value in event.attributes.items()
        if name != "datacontenttype"
    }
    if event.datacontenttype is not None:
        headers["Content-Type"] = event.datacontenttype
    return headers, event.data or b""


def event_to_json(event: CloudEvent) -> dict[str, Any]:
    """The event as a JSON-format object (attributes as canonical strings)."""
    obj: dict[str, Any] = dict(event.attributes)
    if event.data is None:
        return obj
    if is_json_content_type(event.datacontenttype):
        try:
            value = safe_json.loads(event.data, parse_constant=_no_constant)
        except ValueError:
            pass
        else:
            if _compact_json(value) == event.data:
                obj["data"] = value
                return obj
    obj["data_base64"] = base64.b64encode(event.data).decode("ascii")
    return obj


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def to_structured(event: CloudEvent) -> tuple[dict[str, str], bytes]:
    """Structured mode: one event in the JSON format."""
    return {"Content-Type": f"{STRUCTURED_CONTENT_TYPE}; charset=utf-8"}, _dump(event_to_json(event))


def to_batch(events: Sequence[CloudEvent]) -> tuple[dict[str, str], bytes]:
    """Batched mode: a JSON array of events in the JSON format."""
    return {"Content-Type": f"{BATCH_CONTENT_TYPE}; charset=utf-8"}, _dump([event_to_json(e) for e in events])
