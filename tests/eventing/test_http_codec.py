"""Table tests for the HTTP binding: binary, structured and batched modes."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping

import pytest
from werkzeug.datastructures import EnvironHeaders, Headers

from eventing.cloudevent import CloudEvent, new_event
from eventing.http_codec import (
    HeaderSource,
    parse_http,
    percent_decode,
    percent_encode,
    to_batch,
    to_binary,
    to_structured,
)
from eventing.validation import EventTooLarge, InvalidEvent

LIMIT = 1 << 16
STRUCTURED = {"Content-Type": "application/cloudevents+json; charset=utf-8"}
BATCH = {"Content-Type": "application/cloudevents-batch+json"}
BASE = {"specversion": "1.0", "id": "1", "source": "/s", "type": "io.x"}
DROP = object()


def ce_headers(**changes: object) -> dict[str, str]:
    """Binary-mode headers for BASE with changes (DROP removes one); keys are attribute names."""
    merged = {**BASE, **changes}
    return {f"ce-{name}": str(value) for name, value in merged.items() if value is not DROP}


def structured(**changes: object) -> bytes:
    """A structured body for BASE with changes (DROP removes one)."""
    merged = {**BASE, **changes}
    return json.dumps({k: v for k, v in merged.items() if v is not DROP}).encode()


def parse(headers: Mapping[str, str] | HeaderSource, body: bytes = b"", **kwargs: bool) -> list[CloudEvent]:
    return parse_http(headers, body, max_bytes=LIMIT, **kwargs)


# ---- acceptance -------------------------------------------------------------------------------

ACCEPTED_BINARY = [
    ("minimal-no-data", ce_headers(), b"", CloudEvent(BASE, None)),
    (
        "json-data-and-extension",
        {**ce_headers(bucket="images"), "Content-Type": "application/json"},
        b'{"a":1}',
        CloudEvent({**BASE, "bucket": "images", "datacontenttype": "application/json"}, b'{"a":1}'),
    ),
    (
        "percent-encoded-unicode",
        ce_headers(subject="Euro%20%E2%82%AC%20%F0%9F%98%80"),
        b"",
        CloudEvent({**BASE, "subject": "Euro \u20ac \U0001f600"}, None),
    ),
    ("lower-case-hex", ce_headers(subject="caf%c3%a9"), b"", CloudEvent({**BASE, "subject": "caf\u00e9"})),
    ("needless-encoding", ce_headers(subject="%41b"), b"", CloudEvent({**BASE, "subject": "Ab"})),
    ("quoted-string", ce_headers(subject='"a b"'), b"", CloudEvent({**BASE, "subject": "a b"})),
    ("quoted-escape", ce_headers(subject='"a\\"b"'), b"", CloudEvent({**BASE, "subject": 'a"b'})),
    ("raw-space", ce_headers(subject="a b"), b"", CloudEvent({**BASE, "subject": "a b"})),
    (
        "mixed-case-names",
        {"CE-SpecVersion": "1.0", "Ce-Id": "1", "CE-SOURCE": "/s", "ce-Type": "io.x", "CE-MyExt": "v"},
        b"",
        CloudEvent({**BASE, "myext": "v"}),
    ),
    (
        "binary-data",
        {**ce_headers(), "content-type": "application/octet-stream"},
        b"\x00\xff",
        CloudEvent({**BASE, "datacontenttype": "application/octet-stream"}, b"\x00\xff"),
    ),
    (
        "content-type-with-params",
        {**ce_headers(time="2018-04-05T03:56:24Z"), "Content-Type": "application/json; charset=utf-8"},
        b"{}",
        CloudEvent(
            {**BASE, "time": "2018-04-05T03:56:24Z", "datacontenttype": "application/json; charset=utf-8"},
            b"{}",
        ),
    ),
    ("other-headers-ignored", {**ce_headers(), "X-Request-Id": "abc", "Host": "h"}, b"", CloudEvent(BASE)),
]


@pytest.mark.parametrize(
    ("headers", "body", "expected"), [r[1:] for r in ACCEPTED_BINARY], ids=[r[0] for r in ACCEPTED_BINARY]
)
def test_accepts_binary(headers: dict[str, str], body: bytes, expected: CloudEvent) -> None:
    assert parse(headers, body) == [expected]


def test_accepts_werkzeug_headers() -> None:
    headers = Headers([("Ce-Specversion", "1.0"), ("Ce-Id", "1"), ("Ce-Source", "/s"), ("Ce-Type", "io.x")])
    assert parse(headers) == [CloudEvent(BASE)]


def test_accepts_werkzeug_environ_headers() -> None:
    environ = {
        "HTTP_CE_SPECVERSION": "1.0",
        "HTTP_CE_ID": "1",
        "HTTP_CE_SOURCE": "/s",
        "HTTP_CE_TYPE": "io.x",
        "CONTENT_TYPE": "text/plain",
        "CONTENT_LENGTH": "2",
    }
    event = CloudEvent({**BASE, "datacontenttype": "text/plain"}, b"hi")
    assert parse(EnvironHeaders(environ), b"hi") == [event]


def json_event(data: bytes | None, content_type: str | None = "application/json", **extra: str) -> CloudEvent:
    attributes = {**BASE, **extra}
    if content_type is not None:
        attributes["datacontenttype"] = content_type
    return CloudEvent(attributes, data)


ACCEPTED_STRUCTURED = [
    ("no-data", structured(), json_event(None, None)),
    (
        "json-object-data",
        structured(datacontenttype="application/json", data={"a": [1, 2]}),
        json_event(b'{"a":[1,2]}'),
    ),
    ("json-string-data", structured(datacontenttype="application/json", data="hi"), json_event(b'"hi"')),
    ("json-null-data", structured(datacontenttype="application/json", data=None), json_event(b"null")),
    (
        "plus-json-data",
        structured(datacontenttype="application/vnd.x+json", data=[1]),
        json_event(b"[1]", "application/vnd.x+json"),
    ),
    ("text-json-data", structured(datacontenttype="text/json", data=2), json_event(b"2", "text/json")),
    ("no-content-type-means-json", structured(data={"a": 1}), json_event(b'{"a":1}')),
    (
        "text-data-is-utf8",
        structured(datacontenttype="text/plain", data="caf\u00e9"),
        json_event("caf\u00e9".encode(), "text/plain"),
    ),
    (
        "xml-data",
        structured(datacontenttype="application/xml", data='<much wow="xml"/>'),
        json_event(b'<much wow="xml"/>', "application/xml"),
    ),
    (
        "data-base64",
        structured(datacontenttype="image/png", data_base64="AP8="),
        json_event(b"\x00\xff", "image/png"),
    ),
    ("data-base64-no-content-type", structured(data_base64="aGk="), json_event(b"hi", None)),
    ("data-base64-null-with-data", structured(data_base64=None, data=1), json_event(b"1")),
    (
        "typed-extensions",
        structured(num=5, flag=True, off=False),
        json_event(None, None, num="5", flag="true", off="false"),
    ),
    ("null-attributes-absent", structured(subject=None, ext=None), json_event(None, None)),
    ("unicode-extension", structured(ext="\u00e9\U0001f600"), json_event(None, None, ext="\u00e9\U0001f600")),
]


@pytest.mark.parametrize(
    ("body", "expected"), [r[1:] for r in ACCEPTED_STRUCTURED], ids=[r[0] for r in ACCEPTED_STRUCTURED]
)
def test_accepts_structured(body: bytes, expected: CloudEvent) -> None:
    assert parse(STRUCTURED, body) == [expected]


@pytest.mark.parametrize(
    "content_type",
    [
        "application/cloudevents+json",
        "Application/CloudEvents+JSON; charset=UTF-8",
        "application/cloudevents+json;charset=utf8",
    ],
)
def test_accepts_structured_content_type_forms(content_type: str) -> None:
    assert parse({"content-type": content_type}, structured()) == [CloudEvent(BASE)]


def test_structured_ignores_ce_headers() -> None:
    assert parse({**STRUCTURED, "ce-id": "other"}, structured()) == [CloudEvent(BASE)]


def test_accepts_batch() -> None:
    body = b"[" + structured(id="1", data={"a": 1}) + b"," + structured(id="2", data_base64="aGk=") + b"]"
    assert parse(BATCH, body) == [json_event(b'{"a":1}', id="1"), json_event(b"hi", None, id="2")]


@pytest.mark.parametrize("body", [b"[]", b" [ ] "], ids=["empty", "empty-with-spaces"])
def test_accepts_empty_batch(body: bytes) -> None:
    assert parse({"Content-Type": "application/cloudevents-batch+json; charset=utf-8"}, body) == []


# ---- rejection --------------------------------------------------------------------------------

CT_JSON = {"Content-Type": "application/json"}

REJECTED_BINARY = [
    *[(f"missing-ce-{n}", ce_headers(**{n: DROP}), f"'{n}' is missing") for n in ("id", "source", "type")],
    ("missing-ce-specversion", {**ce_headers(specversion=DROP), **CT_JSON}, "not a CloudEvent"),
    ("plain-json-request", CT_JSON, "not a CloudEvent"),
    *[(f"empty-ce-{n}", ce_headers(**{n: ""}), f"'{n}' must not be empty") for n in BASE],
    ("specversion-0.3", ce_headers(specversion="0.3"), "specversion must be '1.0'"),
    ("time-date-only", ce_headers(time="2024-01-01"), "'time' must be an RFC 3339"),
    ("time-no-offset", ce_headers(time="2024-01-01T00:00:00"), "'time' must be an RFC 3339"),
    ("time-word", ce_headers(time="yesterday"), "'time' must be an RFC 3339"),
    ("content-type-not-media-type", {**ce_headers(), "Content-Type": "json"}, "'datacontenttype'"),
    ("ce-datacontenttype-header", ce_headers(datacontenttype="application/json"), "ce-datacontenttype"),
    ("subject-empty", ce_headers(subject=""), "'subject' is present but empty"),
    ("dataschema-empty", ce_headers(dataschema=""), "'dataschema' is present but empty"),
    ("dataschema-relative", ce_headers(dataschema="/schema.json"), "'dataschema' must be an absolute URI"),
    ("source-not-uri-reference", ce_headers(source="a%20b"), "'source' must be a URI-reference"),
    ("name-dash", ce_headers(**{"my-ext": "v"}), "'my-ext' is invalid"),
    ("name-underscore", ce_headers(my_ext="v"), "'my_ext' is invalid"),
    ("name-dot", ce_headers(**{"my.ext": "v"}), "'my.ext' is invalid"),
    ("name-reserved-data", ce_headers(data="v"), "'data' is reserved"),
    ("percent-not-hex", ce_headers(subject="a%zz"), "malformed percent-encoding '%zz'"),
    ("percent-truncated", ce_headers(subject="a%4"), "malformed percent-encoding '%4'"),
    ("percent-at-end", ce_headers(subject="a%"), "malformed percent-encoding"),
    ("percent-overlong-utf8", ce_headers(subject="%C0%A0"), "not valid UTF-8"),
    ("percent-invalid-utf8", ce_headers(subject="%FF"), "not valid UTF-8"),
    ("percent-truncated-utf8", ce_headers(subject="%E2%82"), "not valid UTF-8"),
    ("raw-non-ascii", ce_headers(subject="caf\u00e9"), "must be percent-encoded"),
    ("raw-control-char", ce_headers(subject="a\x01b"), "must be percent-encoded"),
    ("encoded-control-char", ce_headers(subject="a%0Ab"), "control character U+000A"),
    ("unterminated-quote", ce_headers(subject='"abc'), "unterminated double-quoted string"),
    (
        "unsupported-format",
        {**ce_headers(), "Content-Type": "application/cloudevents+avro"},
        "unsupported event format",
    ),
]


@pytest.mark.parametrize(
    ("headers", "reason"), [r[1:] for r in REJECTED_BINARY], ids=[r[0] for r in REJECTED_BINARY]
)
def test_rejects_binary(headers: dict[str, str], reason: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse(headers, b"{}")
    assert reason in str(caught.value)


def test_rejects_repeated_ce_header() -> None:
    headers = Headers([*ce_headers().items(), ("Ce-Id", "2")])
    with pytest.raises(InvalidEvent, match="given more than once"):
        parse(headers)


REJECTED_STRUCTURED = [
    ("not-json", b"{not json", "body is not valid JSON"),
    ("empty-body", b"", "body is not valid JSON"),
    ("not-utf8", b'{"id": "\xff"}', "not valid UTF-8"),
    ("nan", b'{"ext": NaN}', "NaN is not valid JSON"),
    ("array-not-object", b"[]", "must be a JSON object, got list"),
    ("string-not-object", b'"x"', "must be a JSON object, got str"),
    *[(f"missing-{n}", structured(**{n: DROP}), f"'{n}' is missing") for n in BASE],
    *[(f"empty-{n}", structured(**{n: ""}), f"'{n}' must not be empty") for n in BASE],
    ("specversion-0.3", structured(specversion="0.3"), "specversion must be '1.0'"),
    ("specversion-number", structured(specversion=1.0), "'specversion' must be a string"),
    ("id-number", structured(id=5), "'id' must be a string, got number"),
    ("source-number", structured(source=5), "'source' must be a string"),
    ("type-null", structured(type=None), "'type' is missing"),
    ("time-date-only", structured(time="2024-01-01"), "'time' must be an RFC 3339"),
    ("time-no-offset", structured(time="2024-01-01T00:00:00"), "'time' must be an RFC 3339"),
    ("time-word", structured(time="yesterday"), "'time' must be an RFC 3339"),
    ("datacontenttype-not-media-type", structured(datacontenttype="text"), "'datacontenttype'"),
    ("subject-empty", structured(subject=""), "'subject' is present but empty"),
    ("dataschema-empty", structured(dataschema=""), "'dataschema' is present but empty"),
    ("dataschema-relative", structured(dataschema="schema.json"), "'dataschema' must be an absolute URI"),
    ("source-not-uri-reference", structured(source="a b"), "'source' must be a URI-reference"),
    ("name-uppercase", structured(myExt="v"), "'myExt' is invalid"),
    ("name-dash", structured(**{"my-ext": "v"}), "'my-ext' is invalid"),
    ("name-underscore", structured(my_ext="v"), "'my_ext' is invalid"),
    ("name-dot", structured(**{"my.ext": "v"}), "'my.ext' is invalid"),
    ("ext-fraction", structured(ext=1.5), "'ext' must be an integer"),
    (
        "ext-exponent",
        b'{"specversion":"1.0","id":"1","source":"/s","type":"io.x","ext":1e3}',
        "must be an integer",
    ),
    ("ext-over-int32", structured(ext=2**31), "outside the 32-bit"),
    ("ext-object", structured(ext={"a": 1}), "got a JSON object"),
    ("ext-array", structured(ext=[1]), "got a JSON array"),
    ("data-and-data-base64", structured(data={}, data_base64="aGk="), "must not both be present"),
    ("data-null-and-data-base64", structured(data=None, data_base64="aGk="), "must not both be present"),
    ("data-base64-invalid-chars", structured(data_base64="!!!!"), "'data_base64' is not valid base64"),
    ("data-base64-bad-padding", structured(data_base64="abc"), "'data_base64' is not valid base64"),
    ("data-base64-not-string", structured(data_base64=5), "'data_base64' must be a base64 string"),
    (
        "non-json-type-object-data",
        structured(datacontenttype="text/plain", data={"a": 1}),
        "'data' must be a string",
    ),
]


@pytest.mark.parametrize(
    ("body", "reason"), [r[1:] for r in REJECTED_STRUCTURED], ids=[r[0] for r in REJECTED_STRUCTURED]
)
def test_rejects_structured(body: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse(STRUCTURED, body)
    assert reason in str(caught.value)


def test_rejects_structured_non_utf8_charset() -> None:
    with pytest.raises(InvalidEvent, match="must be UTF-8, got charset=latin-1"):
        parse({"Content-Type": "application/cloudevents+json; charset=latin-1"}, structured())


REJECTED_BATCH = [
    ("object-not-array", structured(), True, "must be a JSON array, got dict"),
    ("not-json", b"[", True, "body is not valid JSON"),
    (
        "element-not-object",
        b"[1]",
        True,
        "event [0] of the batch: a structured CloudEvent must be a JSON object",
    ),
    (
        "element-invalid",
        b"[" + structured() + b"," + structured(id=DROP) + b"]",
        True,
        "event [1] of the batch: required attribute 'id'",
    ),
    ("batch-not-allowed", b"[]", False, "batched CloudEvents are not accepted here"),
    ("batch-not-allowed-with-events", b"[" + structured() + b"]", False, "not accepted here"),
]


@pytest.mark.parametrize(
    ("body", "allow_batch", "reason"), [r[1:] for r in REJECTED_BATCH], ids=[r[0] for r in REJECTED_BATCH]
)
def test_rejects_batch(body: bytes, allow_batch: bool, reason: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse(BATCH, body, allow_batch=allow_batch)
    assert reason in str(caught.value)


def test_rejects_unsupported_batch_format() -> None:
    with pytest.raises(InvalidEvent, match="unsupported batch format"):
        parse({"Content-Type": "application/cloudevents-batch+avro"}, b"[]")


TOO_LARGE = [
    ("binary", {**ce_headers(), **CT_JSON}, b'"' + b"x" * 100 + b'"'),
    ("structured", STRUCTURED, structured(data="x" * 100)),
    ("batch", BATCH, b"[" + structured(data="x" * 100) + b"]"),
    ("invalid-but-too-large", CT_JSON, b"x" * 200),
]


@pytest.mark.parametrize(("headers", "body"), [r[1:] for r in TOO_LARGE], ids=[r[0] for r in TOO_LARGE])
def test_too_large(headers: dict[str, str], body: bytes) -> None:
    with pytest.raises(EventTooLarge, match=f"body is {len(body)} bytes, over the limit of 100 bytes"):
        parse_http(headers, body, max_bytes=100)


def test_body_at_the_limit_is_accepted() -> None:
    body = b"x" * 100
    headers = {**ce_headers(), "Content-Type": "text/plain"}
    assert parse_http(headers, body, max_bytes=100)[0].data == body


# ---- encoding ---------------------------------------------------------------------------------

PERCENT = [
    ("plain", "io.datafrost.object.created", "io.datafrost.object.created"),
    ("spec-example", "Euro \u20ac \U0001f600", "Euro%20%E2%82%AC%20%F0%9F%98%80"),
    ("quote-and-percent", 'a"b%c', "a%22b%25c"),
    ("reserved-kept", "/a/b?c=d&e#f:g", "/a/b?c=d&e#f:g"),
    ("del-and-nbsp", "\x7f\u00a0", "%7F%C2%A0"),
    ("tab-newline", "\t\n", "%09%0A"),
]


@pytest.mark.parametrize(("value", "encoded"), [r[1:] for r in PERCENT], ids=[r[0] for r in PERCENT])
def test_percent_encoding(value: str, encoded: str) -> None:
    assert percent_encode(value) == encoded
    assert percent_decode(encoded) == value


def test_to_binary_headers() -> None:
    event = CloudEvent(
        {**BASE, "subject": 'caf\u00e9 "1" 5%', "datacontenttype": "application/json", "bucket": "b"}, b"{}"
    )
    headers, body = to_binary(event)
    assert headers == {
        "ce-specversion": "1.0",
        "ce-id": "1",
        "ce-source": "/s",
        "ce-type": "io.x",
        "ce-subject": "caf%C3%A9%20%221%22%205%25",
        "ce-bucket": "b",
        "Content-Type": "application/json",
    }
    assert body == b"{}"


def test_to_binary_without_data() -> None:
    assert to_binary(CloudEvent(BASE)) == ({f"ce-{k}": v for k, v in BASE.items()}, b"")


STRUCTURED_DATA = [
    ("json-value", "application/json", b'{"a":[1,"\\u00e9"]}', {"data": {"a": [1, "\u00e9"]}}),
    ("plus-json-value", "application/ld+json", b"[1]", {"data": [1]}),
    ("binary-type", "image/png", b"\x89PNG", {"data_base64": base64.b64encode(b"\x89PNG").decode()}),
    ("text-type", "text/plain", b"hi", {"data_base64": "aGk="}),
    (
        "json-type-not-compact",
        "application/json",
        b'{"a": 1}',
        {"data_base64": base64.b64encode(b'{"a": 1}').decode()},
    ),
    ("json-type-invalid-json", "application/json", b"{", {"data_base64": "ew=="}),
    ("json-type-nan", "application/json", b"NaN", {"data_base64": "TmFO"}),
    ("no-content-type", None, b"{}", {"data_base64": "e30="}),
    ("no-data", "application/json", None, {}),
]


@pytest.mark.parametrize(
    ("content_type", "data", "members"), [r[1:] for r in STRUCTURED_DATA], ids=[r[0] for r in STRUCTURED_DATA]
)
def test_to_structured_data(content_type: str | None, data: bytes | None, members: dict[str, object]) -> None:
    attributes = dict(BASE) if content_type is None else {**BASE, "datacontenttype": content_type}
    headers, body = to_structured(CloudEvent(attributes, data))
    assert headers == {"Content-Type": "application/cloudevents+json; charset=utf-8"}
    assert json.loads(body) == {**attributes, **members}


def test_to_batch() -> None:
    events = [CloudEvent({**BASE, "id": "1"}), CloudEvent({**BASE, "id": "2"}, b"\x00")]
    headers, body = to_batch(events)
    assert headers == {"Content-Type": "application/cloudevents-batch+json; charset=utf-8"}
    assert json.loads(body) == [{**BASE, "id": "1"}, {**BASE, "id": "2", "data_base64": "AA=="}]


# ---- round trips ------------------------------------------------------------------------------

ROUND_TRIP_EVENTS = [
    ("no-data", new_event("io.datafrost.object.removed", "/storage")),
    ("dict-data", new_event("io.x", "https://example.com/s", {"bucket": "images", "size": 3})),
    (
        "unicode-and-extensions",
        new_event(
            "io.x",
            "/s",
            {"key": "caf\u00e9 \U0001f600"},
            subject='photos/caf\u00e9 "1" 100%.jpg',
            extensions={"bucket": "b 1", "emoji": "\U0001f600", "pct": "%41", "empty": ""},
        ),
    ),
    ("octet-stream", new_event("io.x", "/s", b"\x00\xff\x10", datacontenttype="application/octet-stream")),
    ("xml-text", new_event("io.x", "/s", b'<a b="c"/>', datacontenttype="application/xml")),
    ("json-not-compact", new_event("io.x", "/s", b'{"a": 1}')),
    ("quoted-content-type", new_event("io.x", "/s", b"x", datacontenttype='text/plain; charset="utf-8"')),
    ("json-string", new_event("io.x", "/s", "just a string")),
    ("json-null-bytes", new_event("io.x", "/s", b"null")),
    ("dataschema", new_event("io.x", "urn:x", 1).with_attributes(dataschema="https://x/s.json#/a")),
    ("data-without-content-type", CloudEvent(BASE, b'{"a":1}')),
]


@pytest.mark.parametrize("event", [r[1] for r in ROUND_TRIP_EVENTS], ids=[r[0] for r in ROUND_TRIP_EVENTS])
def test_round_trip_binary(event: CloudEvent) -> None:
    assert parse(*to_binary(event)) == [event]


@pytest.mark.parametrize("event", [r[1] for r in ROUND_TRIP_EVENTS], ids=[r[0] for r in ROUND_TRIP_EVENTS])
def test_round_trip_structured(event: CloudEvent) -> None:
    assert parse(*to_structured(event)) == [event]


def test_round_trip_batch() -> None:
    events = [event for _, event in ROUND_TRIP_EVENTS]
    assert parse(*to_batch(events)) == events


def test_round_trip_through_werkzeug_headers() -> None:
    event = ROUND_TRIP_EVENTS[2][1]
    headers, body = to_binary(event)
    assert parse(Headers(list(headers.items())), body) == [event]
