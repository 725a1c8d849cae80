"""Every parameter parser of every function, against any text: it parses to a value the database holds,
or it refuses with a 400 whose message starts with the parameter's name. Never anything else.

The parsers are tested directly with many examples (unicode digits, NUL, unpaired surrogates, huge
and negative numbers, empty text, deep JSON); then fewer examples go end to end through a real catalog
and dead-letters function on PostgreSQL, where a value that slipped through would reach SQL and come
back as a database error: the answers must be 200s and 400s (404s for a path id), never a 5xx.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import pytest
import urllib3
from hypothesis import given, settings
from hypothesis import strategies as st

from eventing.trigger import MAX_PARALLELISM, MAX_RETRY, Trigger
from functions.catalog.queries import (
    MAX_PAGE,
    PHASH_BITS,
    RANGE_FILTERS,
    STATUSES,
    Listing,
    decode_cursor,
    encode_cursor,
)
from functions.catalog.schema import images
from functions.dead_letters.main import MAX_LIMIT, LetterQuery
from functions.dead_letters.store import dead_letters, is_letter_id
from functions.upload import presign
from pipeline.events import is_image_id
from shared import safe_json
from shared.errors import HttpError
from shared.params import ParameterError
from shared.settings import from_env
from shared.sql_values import column_length, integer_range, text_problem
from tests.support.functions import ServedFunction
from tests.support.services import POSTGRES_URL, fresh_schema, require_service

MANY = settings(max_examples=1000, deadline=None)  # a parser call takes microseconds
END_TO_END = settings(max_examples=120, deadline=None)  # each example is an HTTP request and a query

DIGITS = "0123456789\u00b2\u00b3\u00b9\u2070\u0660\u0661\u0662\u0663\u06f1\u0967\uff10\uff11\uff19\U0001d7ce"
hostile_text = st.one_of(
    st.text(st.characters(exclude_categories=())),  # any code point, unpaired surrogates included
    st.text(DIGITS, max_size=40),  # digits of other scripts, superscripts, fullwidth
    st.integers().map(str),  # negative, and far past 64 bits
    st.integers(min_value=2**31 - 3, max_value=2**31 + 3).map(str),
    st.integers(min_value=2**63 - 3, max_value=2**63 + 3).map(str),
    st.integers(min_value=0, max_value=2**64).map(lambda n: f"{n:0>30}"),  # leading zeros
    st.sampled_from(["", "\x00", "1\x00", " 1", "1 ", "+1", "1_000", "0x10", "1e3", "9" * 5000]),
    st.datetimes(timezones=st.timezones()).map(datetime.isoformat),
    st.binary(max_size=120).map(lambda b: base64.urlsafe_b64encode(b).decode()),  # cursors of anything
    st.lists(st.text(max_size=40), max_size=3).map(
        lambda v: base64.urlsafe_b64encode(json.dumps(v).encode()).decode()
    ),
)

CATALOG_PARAMETERS = (
    "status", "format", "camera", "filename", "sha256", *RANGE_FILTERS, "taken_after", "taken_before",
    "limit", "cursor", "similar_to", "max_distance",
)  # fmt: skip
DEAD_LETTER_PARAMETERS = ("limit", "type")


def holds_text(value: str | None, column: Any) -> bool:
    return value is None or (text_problem(value) is None and len(value) <= column_length(column))


def assert_valid(listing: Listing) -> None:
    """Every value of a parsed listing is one its column, or its range, holds."""
    filters = listing.filters
    assert 1 <= listing.limit <= MAX_PAGE and 0 <= listing.max_distance <= PHASH_BITS
    assert listing.similar_to is None or is_image_id(listing.similar_to)
    assert listing.cursor is None or is_image_id(listing.cursor[1])
    assert filters.status in (None, *STATUSES)
    assert holds_text(filters.format, images.c.format) and holds_text(filters.camera, images.c.camera)
    assert holds_text(filters.filename, images.c.filename)
    assert filters.sha256 is None or len(filters.sha256) == 64
    for name, column in RANGE_FILTERS.items():
        value, bounds = getattr(filters, name), integer_range(column)
        assert bounds is not None and (value is None or 0 <= value <= bounds[1])
    for moment in (filters.taken_after, filters.taken_before):
        assert moment is None or moment.tzinfo is UTC


def assert_names(refusal: ParameterError, name: str) -> None:
    assert refusal.status == 400 and refusal.parameter == name
    assert refusal.message.startswith(f"{name} "), refusal.message


@MANY
@given(name=st.sampled_from(CATALOG_PARAMETERS), raw=hostile_text)
def test_every_catalog_parameter_parses_or_is_a_400_naming_it(name: str, raw: str) -> None:
    try:
        listing = Listing.from_args({name: raw})
    except ParameterError as refusal:
        assert_names(refusal, name)
    else:
        assert_valid(listing)


@MANY
@given(args=st.dictionaries(st.sampled_from(CATALOG_PARAMETERS), hostile_text, max_size=5))
def test_catalog_parameters_together_parse_or_one_is_named(args: dict[str, str]) -> None:
    try:
        listing = Listing.from_args(args)
    except ParameterError as refusal:
        assert refusal.parameter in args
        assert_names(refusal, refusal.parameter)
    else:
        assert_valid(listing)


@MANY
@given(name=st.sampled_from(tuple(RANGE_FILTERS)), value=st.integers(min_value=0, max_value=2**64))
def test_an_integer_filter_is_taken_exactly_when_its_column_holds_it(name: str, value: int) -> None:
    bounds = integer_range(RANGE_FILTERS[name])
    assert bounds is not None
    if value <= bounds[1]:
        assert getattr(Listing.from_args({name: str(value)}).filters, name) == value
    else:
        with pytest.raises(ParameterError) as refused:
            Listing.from_args({name: str(value)})
        assert_names(refused.value, name)


CURSOR_ZONES = st.sampled_from(
    [None, UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=14))]
)


@MANY
@given(moment=st.datetimes(timezones=CURSOR_ZONES), image=st.from_regex(r"[0-9a-f]{32}", fullmatch=True))
def test_every_cursor_this_api_returns_parses_back(moment: datetime, image: str) -> None:
    assert decode_cursor(encode_cursor(moment, image)) == (moment, image)


@MANY
@given(name=st.sampled_from(DEAD_LETTER_PARAMETERS), raw=hostile_text)
def test_every_dead_letter_parameter_parses_or_is_a_400_naming_it(name: str, raw: str) -> None:
    try:
        query = LetterQuery.from_args({name: raw})
    except ParameterError as refusal:
        assert_names(refusal, name)
    else:
        assert 1 <= query.limit <= MAX_LIMIT
        assert holds_text(query.event_type, dead_letters.c.event_type)


@MANY
@given(raw=hostile_text)
def test_a_path_id_is_an_id_only_in_the_shape_the_functions_make(raw: str) -> None:
    """The catalog's and dead letters' path ids: anything else is a 404 before any query."""
    if is_image_id(raw):
        assert len(raw) == 32 and set(raw) <= set("0123456789abcdef")
    if is_letter_id(raw):
        assert len(raw) == 36 and raw.isascii() and text_problem(raw) is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(st.characters(exclude_categories=())),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)


@MANY
@given(fields=st.dictionaries(st.sampled_from(["filename", "expires_in", "other"]), json_values, max_size=3))
def test_a_presign_body_parses_to_exact_types_or_is_a_400_naming_the_field(fields: dict[str, Any]) -> None:
    body = json.dumps(fields).encode()
    try:
        asked = presign.PresignRequest.from_body(body)
    except HttpError as refusal:
        assert refusal.status == 400
        named = [f for f in fields if refusal.message.startswith(f"{f} ")]
        assert named or refusal.message.startswith("unknown field(s) 'other'"), refusal.message
    else:
        assert type(asked.expires_in) is int and 1 <= asked.expires_in <= presign.MAX_EXPIRY_SECONDS
        filename = asked.filename
        assert filename is None or (
            len(filename) <= presign.MAX_FILENAME_CHARS and text_problem(filename) is None
        )


@MANY
@given(
    body=st.binary(max_size=200) | st.integers(min_value=0, max_value=3000).map(lambda n: b"[" * n + b"]" * n)
)
def test_any_presign_body_bytes_parse_or_are_a_400(body: bytes) -> None:
    try:
        presign.PresignRequest.from_body(body)
    except HttpError as refusal:
        assert refusal.status == 400


@MANY
@given(expires=hostile_text, signature=hostile_text)
def test_a_presigned_urls_expiry_and_signature_are_checked_or_a_403(expires: str, signature: str) -> None:
    config = from_env({"DATAFROST_PRESIGN_SECRET": "properties"})
    with pytest.raises(HttpError) as refused:
        presign.check_local_signature(config, "alice/x.jpg", expires, signature)
    assert refused.value.status == 403


@MANY
@given(parallelism=json_values, retry=json_values)
def test_a_trigger_takes_bounded_integers_or_says_which_is_wrong(parallelism: Any, retry: Any) -> None:
    raw = {
        "name": "t",
        "subscriber": "http://127.0.0.1/",
        "parallelism": parallelism,
        "delivery": {"retry": retry},
    }
    try:
        trigger = Trigger.from_json(raw)
    except ValueError as refusal:
        assert str(refusal).startswith(("parallelism ", "delivery.retry ")), refusal
    else:
        assert type(trigger.parallelism) is int and 1 <= trigger.parallelism <= MAX_PARALLELISM
        assert type(trigger.delivery.retry) is int and 0 <= trigger.delivery.retry <= MAX_RETRY


@MANY
@given(depth=st.integers(min_value=0, max_value=5000), opener=st.sampled_from(["[", '{"a":']))
def test_json_parses_to_its_depth_limit_and_refuses_past_it(depth: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    text = opener * depth + "0" + closer * depth
    if depth <= safe_json.MAX_DEPTH:
        assert safe_json.depth(safe_json.loads(text)) == depth
    else:
        with pytest.raises(safe_json.JsonTooDeep):
            safe_json.loads(text)


# -- end to end: a real catalog and dead-letters function on PostgreSQL ----------------------------


@pytest.fixture(scope="module")
def on_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The catalog's and dead letters' own processes, each database a fresh PostgreSQL schema."""
    with fresh_schema(require_service("postgres", POSTGRES_URL, 5432)) as database:
        env = {
            "DATAFROST_AUTH": "off",
            "DATAFROST_DATA_DIR": str(tmp_path_factory.mktemp("properties")),
            "DATAFROST_CATALOG_DB": database,
            "DATAFROST_DEAD_LETTERS_DB": database,
        }
        served = {name: ServedFunction(name, env) for name in ("catalog", "dead-letters")}
        try:
            yield {name: function.url for name, function in served.items()}
        finally:
            for function in served.values():
                function.stop()


web = urllib3.PoolManager(retries=False)


def query_string(args: dict[str, str]) -> str:
    """As a client sends it; an unpaired surrogate goes as the bytes Python would write for it."""
    return "&".join(
        f"{quote(k)}={quote(v.encode('utf-8', 'surrogatepass'), safe='')}" for k, v in args.items()
    )


def get(url: str) -> tuple[int, Any]:
    answer = web.request("GET", url, timeout=60)
    assert answer.headers.get("Content-Type", "").startswith("application/json"), answer.data[:200]
    return answer.status, json.loads(answer.data)


@END_TO_END
@given(args=st.dictionaries(st.sampled_from(CATALOG_PARAMETERS), hostile_text, min_size=1, max_size=3))
def test_no_catalog_parameter_reaches_postgresql_as_a_500(
    on_postgres: dict[str, str], args: dict[str, str]
) -> None:
    status, body = get(f"{on_postgres['catalog']}/images?{query_string(args)}")
    if status == 400:
        assert any(body["error"].startswith(f"{name} ") for name in args), body
    else:
        assert status in (200, 404), (status, body)  # 404: similar_to an image that is not there


@END_TO_END
@given(args=st.dictionaries(st.sampled_from(DEAD_LETTER_PARAMETERS), hostile_text, min_size=1, max_size=2))
def test_no_dead_letter_parameter_reaches_postgresql_as_a_500(
    on_postgres: dict[str, str], args: dict[str, str]
) -> None:
    status, body = get(f"{on_postgres['dead-letters']}/?{query_string(args)}")
    if status == 400:
        assert any(body["error"].startswith(f"{name} ") for name in args), body
    else:
        assert status == 200 and body == {"dead_letters": []}


PATH_SEGMENT = hostile_text.filter(lambda s: s not in ("", ".", "..") and "/" not in s)  # one segment


@END_TO_END
@given(raw=PATH_SEGMENT, where=st.sampled_from(["catalog", "dead-letters"]))
def test_no_path_id_reaches_postgresql_as_a_500(on_postgres: dict[str, str], raw: str, where: str) -> None:
    path = quote(raw.encode("utf-8", "surrogatepass"), safe="")
    prefix = "/images/" if where == "catalog" else "/"
    status, body = get(f"{on_postgres[where]}{prefix}{path}")
    if (
        status == 400
    ):  # a path no hop could read one way (an encoded slash or control character, a dot segment)
        assert body["error"].endswith(("refused in paths", "are refused", "not UTF-8")), body
    else:
        assert status == 404 and body["error"].startswith(("no image", "no dead letter")), (status, body)
