"""Table tests for strict CloudEvents 1.0 attribute validation."""

from __future__ import annotations

import pytest

from eventing.validation import InvalidEvent, canonical_attributes

BASE: dict[str, object] = {"specversion": "1.0", "id": "1", "source": "/s", "type": "io.x"}
DROP = object()


def attrs(**changes: object) -> dict[str, object]:
    """BASE with attributes changed; DROP removes one."""
    merged = {**BASE, **changes}
    return {name: value for name, value in merged.items() if value is not DROP}


def named(name: str, value: object) -> dict[str, object]:
    """BASE plus one attribute whose name is not a Python identifier."""
    return {**BASE, name: value}


# (id, raw attributes, from_json, words the reason must contain)
REJECTED = [
    *[(f"missing-{n}", attrs(**{n: DROP}), True, f"'{n}' is missing") for n in BASE],
    *[(f"empty-{n}", attrs(**{n: ""}), False, f"'{n}' must not be empty") for n in BASE],
    *[(f"null-{n}", attrs(**{n: None}), True, f"'{n}' is missing") for n in BASE],
    ("specversion-0.3", attrs(specversion="0.3"), False, "specversion must be '1.0'"),
    ("specversion-1.0.2", attrs(specversion="1.0.2"), False, "specversion must be '1.0'"),
    ("time-date-only", attrs(time="2024-01-01"), False, "'time' must be an RFC 3339"),
    ("time-no-offset", attrs(time="2024-01-01T00:00:00"), False, "'time' must be an RFC 3339"),
    ("time-word", attrs(time="yesterday"), False, "'time' must be an RFC 3339"),
    ("time-no-seconds", attrs(time="2024-01-01T00:00Z"), False, "'time' must be an RFC 3339"),
    ("time-space-separator", attrs(time="2024-01-01 00:00:00Z"), False, "'time'"),
    ("time-month-13", attrs(time="2024-13-01T00:00:00Z"), False, "'time'"),
    ("time-feb-30", attrs(time="2024-02-30T00:00:00Z"), False, "'time'"),
    ("time-hour-25", attrs(time="2024-01-01T25:00:00Z"), False, "'time'"),
    ("time-offset-no-colon", attrs(time="2024-01-01T00:00:00+0100"), False, "'time'"),
    ("time-empty", attrs(time=""), False, "'time'"),
    ("datacontenttype-no-subtype", attrs(datacontenttype="json"), False, "'datacontenttype'"),
    ("datacontenttype-empty-subtype", attrs(datacontenttype="application/"), False, "'datacontenttype'"),
    ("datacontenttype-space", attrs(datacontenttype="application json"), False, "'datacontenttype'"),
    ("datacontenttype-bare-param", attrs(datacontenttype="text/plain; charset"), False, "RFC 2046"),
    ("datacontenttype-trailing-semicolon", attrs(datacontenttype="text/plain;"), False, "RFC 2046"),
    ("datacontenttype-tspecial", attrs(datacontenttype="text/pl@in"), False, "RFC 2046"),
    ("datacontenttype-empty", attrs(datacontenttype=""), False, "'datacontenttype'"),
    ("subject-empty", attrs(subject=""), False, "'subject' is present but empty"),
    ("dataschema-empty", attrs(dataschema=""), False, "'dataschema' is present but empty"),
    ("dataschema-relative-path", attrs(dataschema="/schemas/x.json"), False, "absolute URI"),
    ("dataschema-bare-name", attrs(dataschema="x.json"), False, "absolute URI"),
    ("dataschema-space", attrs(dataschema="https://x/a b"), False, "absolute URI"),
    ("source-space", attrs(source="a b"), False, "'source' must be a URI-reference"),
    ("source-bad-percent", attrs(source="/a%zz"), False, "'source' must be a URI-reference"),
    ("source-bad-scheme", attrs(source="1x:y"), False, "'source' must be a URI-reference"),
    ("source-two-fragments", attrs(source="/a#b#c"), False, "'source' must be a URI-reference"),
    ("source-non-ascii", attrs(source="/caf\u00e9"), False, "'source' must be a URI-reference"),
    ("name-uppercase", named("myExt", "v"), True, "'myExt' is invalid"),
    ("name-dash", named("my-ext", "v"), False, "'my-ext' is invalid"),
    ("name-underscore", named("my_ext", "v"), True, "'my_ext' is invalid"),
    ("name-dot", named("my.ext", "v"), True, "'my.ext' is invalid"),
    ("name-empty", named("", "v"), True, "'' is invalid"),
    ("name-reserved-data", named("data", "v"), False, "'data' is reserved"),
    ("json-id-number", attrs(id=5), True, "'id' must be a string, got number"),
    ("json-source-number", attrs(source=1), True, "'source' must be a string"),
    ("json-type-boolean", attrs(type=True), True, "'type' must be a string, got boolean"),
    ("json-specversion-number", attrs(specversion=1.0), True, "'specversion' must be a string"),
    ("json-time-number", attrs(time=1700000000), True, "'time' must be a string"),
    ("json-subject-object", attrs(subject={"a": 1}), True, "'subject' must be a string, got object"),
    ("json-ext-fraction", named("ext", 1.5), True, "'ext' must be an integer"),
    ("json-ext-exponent-float", named("ext", 1000.0), True, "'ext' must be an integer"),
    ("json-ext-over-int32", named("ext", 2**31), True, "outside the 32-bit"),
    ("json-ext-under-int32", named("ext", -(2**31) - 1), True, "outside the 32-bit"),
    ("json-ext-object", named("ext", {"a": 1}), True, "got a JSON object"),
    ("json-ext-array", named("ext", [1]), True, "got a JSON array"),
    ("headers-ext-int", named("ext", 5), False, "'ext' must be a string, got int"),
    ("headers-null", attrs(subject=None), False, "'subject' must be a string"),
    ("control-char", attrs(subject="a\nb"), False, "'subject' contains control character U+000A"),
    ("c1-control-char", named("ext", "a\x85"), True, "control character U+0085"),
    ("lone-surrogate", attrs(id="\ud800"), True, "'id' contains an unpaired surrogate"),
    ("noncharacter", attrs(type="io.\uffff"), True, "'type' contains Unicode noncharacter U+FFFF"),
]


@pytest.mark.parametrize(
    ("raw", "from_json", "reason"), [r[1:] for r in REJECTED], ids=[r[0] for r in REJECTED]
)
def test_rejects(raw: dict[str, object], from_json: bool, reason: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        canonical_attributes(raw, from_json=from_json)
    assert reason in str(caught.value)


# (id, raw attributes, from_json, the attributes expected beyond BASE)
ACCEPTED = [
    ("minimal", attrs(), False, {}),
    ("time-z", attrs(time="2018-04-05T17:31:00Z"), False, {"time": "2018-04-05T17:31:00Z"}),
    ("time-fraction-offset", attrs(time="2018-04-05t17:31:00.123456+05:30"), False, None),
    ("time-negative-offset", attrs(time="2020-02-29T00:00:00-08:00"), False, None),
    ("time-leap-second", attrs(time="1990-12-31T23:59:60Z"), False, None),
    ("datacontenttype-json", attrs(datacontenttype="application/json"), False, None),
    ("datacontenttype-charset", attrs(datacontenttype="text/plain; charset=utf-8"), False, None),
    (
        "datacontenttype-quoted-param",
        attrs(datacontenttype='multipart/form-data; boundary="a b"'),
        False,
        None,
    ),
    ("datacontenttype-vendor", attrs(datacontenttype="application/vnd.apache.thrift.binary"), False, None),
    (
        "datacontenttype-no-space",
        attrs(datacontenttype="application/cloudevents+json;charset=UTF-8"),
        False,
        None,
    ),
    ("source-https", attrs(source="https://github.com/cloudevents"), False, None),
    ("source-mailto", attrs(source="mailto:cncf-wg-serverless@lists.cncf.io"), False, None),
    ("source-urn", attrs(source="urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66"), False, None),
    ("source-phone-like", attrs(source="1-555-123-4567"), False, None),
    ("source-percent-encoded", attrs(source="/a%20b?q=1#frag"), False, None),
    ("dataschema-https", attrs(dataschema="https://example.com/schema.json"), False, None),
    ("dataschema-urn", attrs(dataschema="urn:example:schema"), False, None),
    ("subject-unicode", attrs(subject="caf\u00e9 \U0001f600"), True, None),
    ("extension-string", named("bucket", "images"), True, None),
    ("extension-empty-string", named("ext", ""), False, None),
    ("extension-long-name", named("averyveryverylongextensionname1", "v"), False, None),
    ("json-ext-int", named("ext", 5), True, {"ext": "5"}),
    ("json-ext-negative-int", named("ext", -(2**31)), True, {"ext": "-2147483648"}),
    ("json-ext-max-int", named("ext", 2**31 - 1), True, {"ext": "2147483647"}),
    ("json-ext-true", named("ext", True), True, {"ext": "true"}),
    ("json-ext-false", named("ext", False), True, {"ext": "false"}),
    ("json-null-optional-is-absent", attrs(subject=None, time=None), True, {}),
    ("json-null-extension-is-absent", named("ext", None), True, {}),
]


@pytest.mark.parametrize(
    ("raw", "from_json", "extra"), [r[1:] for r in ACCEPTED], ids=[r[0] for r in ACCEPTED]
)
def test_accepts(raw: dict[str, object], from_json: bool, extra: dict[str, str] | None) -> None:
    result = canonical_attributes(raw, from_json=from_json)
    expected = {k: v for k, v in raw.items() if isinstance(v, str)} if extra is None else {**BASE, **extra}
    assert result == expected
