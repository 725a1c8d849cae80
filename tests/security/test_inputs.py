"""Hostile input through `datafrost dev` (catalog and dead letters on PostgreSQL) and straight at each
function's own port: a presigned URL takes one image once; bad parameters, deep JSON and data no
column holds are 4xx answers with a JSON reason; an oversized request head is a JSON 431 from every
server (the gateway, a function's waitress, func's hypercorn). Never a 500, never a page of text.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import http.client
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import urllib3

from eventing.cloudevent import new_event
from eventing.http_codec import to_binary
from eventing.rabbitmq_source import RABBITMQ_SOURCE_EVENT
from pipeline import events
from shared.http_limits import BEHIND_PROXY, EDGE
from shared.objectstore.local import LocalObjectStore
from tests.support import images
from tests.support.functions import FuncServed
from tests.support.platform import DevProcess, add_dev_users, dev_token_headers, storage_events_headers
from tests.support.services import POSTGRES_URL, fresh_schema, require_service

web = urllib3.PoolManager(retries=False)
DEEP = 100_000  # levels of nesting: the json module's recursion limit is about 1,000
CHANNELS = ("gateway", "direct")


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevProcess]:
    """The platform with the catalog and dead letters on PostgreSQL, every function kept running."""
    data_dir = tmp_path_factory.mktemp("inputs") / "data"
    add_dev_users(data_dir, {"alice": ["editor"]})
    with fresh_schema(require_service("postgres", POSTGRES_URL, 5432)) as database:
        platform = DevProcess(data_dir, "--keep-warm", "--db", database).start()
        try:
            yield platform
        finally:
            platform.stop()


def base(dev: DevProcess, function: str, channel: str) -> str:
    """Where `function` is reached: through the gateway, or at its own port (started first)."""
    if channel == "gateway":
        return f"{dev.url}/{function}"
    dev.request("GET", f"/{function}/healthz", user=None)
    url: str = dev.functions()[function]["url"]
    assert url, f"{function} is not running"
    return url


def call(
    dev: DevProcess, method: str, url: str, user: str | None = "admin", **kwargs: Any
) -> urllib3.BaseHTTPResponse:
    headers = dict(kwargs.pop("headers", None) or {})
    if user is not None:
        headers["Authorization"] = f"Bearer {dev.token(user)}"
    return web.request(method, url, headers=headers, timeout=60, **kwargs)


def refusal(answer: urllib3.BaseHTTPResponse) -> tuple[int, str]:
    """(status, reason) of a JSON error answer; fails on any other kind of answer."""
    assert answer.headers.get("Content-Type", "").startswith("application/json"), answer.data[:200]
    body = json.loads(answer.data)
    assert set(body) == {"error"}, body
    return answer.status, body["error"]


# -- item 11: presigned uploads of the local store ------------------------------------------------


def presigned(dev: DevProcess, body: Any = None) -> dict[str, Any]:
    status, grant = dev.json("POST", "/upload/presign", {} if body is None else body, user="alice")
    assert status == 200, grant
    return dict(grant)


def put_url(dev: DevProcess, grant: dict[str, Any], channel: str) -> str:
    """The grant's URL, or the same path and query at the upload function's own port."""
    url: str = grant["url"]
    return url if channel == "gateway" else base(dev, "upload", "direct") + url.split("/upload", 1)[1]


def stored(dev: DevProcess, key: str) -> bytes:
    return LocalObjectStore(dev.data_dir / "buckets").get("uploads", key)


@pytest.mark.parametrize("channel", CHANNELS)
def test_a_presigned_url_takes_one_put(dev: DevProcess, channel: str) -> None:
    grant = presigned(dev, {"filename": "one.jpg", "expires_in": 60})
    url, first = put_url(dev, grant, channel), images.jpeg((40, 30))
    assert web.request("PUT", url, body=first, headers={"Content-Type": "image/jpeg"}).status == 200
    again = web.request("PUT", url, body=images.jpeg((50, 20)), headers={"Content-Type": "image/jpeg"})
    assert refusal(again) == (403, "this upload URL has already been used: ask for a new one")
    not_an_image = web.request(
        "PUT", url, body=b"plain text, not an image", headers={"Content-Type": "image/gif"}
    )
    assert refusal(not_an_image)[0] == 415  # the body is checked first, and still refused
    assert stored(dev, grant["key"]) == first


@pytest.mark.parametrize("channel", CHANNELS)
def test_of_concurrent_puts_of_one_url_exactly_one_is_stored(dev: DevProcess, channel: str) -> None:
    grant = presigned(dev)
    url = put_url(dev, grant, channel)
    bodies = [images.jpeg((30 + n, 30)) for n in range(8)]
    answers: list[urllib3.BaseHTTPResponse | None] = [None] * len(bodies)
    start = threading.Barrier(len(bodies))

    def put(n: int) -> None:
        start.wait()
        answers[n] = urllib3.PoolManager(retries=False).request("PUT", url, body=bodies[n], timeout=60)

    threads = [threading.Thread(target=put, args=(n,)) for n in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = [a.status if a is not None else None for a in answers]
    assert sorted(statuses, key=str) == [200] + [403] * (len(bodies) - 1), statuses
    winner = statuses.index(200)
    assert stored(dev, grant["key"]) == bodies[winner]
    for answer in answers:
        assert answer is not None
        if answer.status == 403:
            assert "already been used" in refusal(answer)[1]


@pytest.mark.parametrize("channel", CHANNELS)
def test_a_presigned_put_of_non_image_bytes_is_415_and_leaves_the_url_unused(
    dev: DevProcess, channel: str
) -> None:
    grant = presigned(dev)
    url = put_url(dev, grant, channel)
    status, reason = refusal(web.request("PUT", url, body=b"#!/bin/sh\necho hi\n"))
    assert status == 415 and "not an accepted image" in reason
    assert LocalObjectStore(dev.data_dir / "buckets").stat("uploads", grant["key"]) is None
    image = images.jpeg((24, 24))
    assert web.request("PUT", url, body=image).status == 200
    assert stored(dev, grant["key"]) == image


def test_a_presigned_put_never_replaces_an_object(dev: DevProcess) -> None:
    grant = presigned(dev)
    already = images.jpeg((16, 16))
    LocalObjectStore(dev.data_dir / "buckets").put("uploads", grant["key"], already, "image/jpeg")
    status, reason = refusal(web.request("PUT", grant["url"], body=images.jpeg((20, 20))))
    assert status == 409 and "exists already" in reason
    assert stored(dev, grant["key"]) == already


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            b'{"expires_in": true}',
            "expires_in must be an integer from 1 to 3600 seconds, got a boolean 'true'",
        ),
        (b'{"expires_in": 60.0}', "expires_in must be an integer"),
        (b'{"expires_in": "60"}', "expires_in must be an integer"),
        (b'{"expires_in": 0}', "expires_in must be an integer from 1 to 3600"),
        (b'{"expires_in": 3601}', "expires_in must be an integer from 1 to 3600"),
        (b'{"expires_in": 1e400}', "expires_in must be an integer"),
        (b'{"filename": 7}', "filename must be a string, got a number"),
        (b'{"filename": null}', "filename must be a string, got null"),
        (b'{"filename": ["a.jpg"]}', "filename must be a string, got an array"),
        (json.dumps({"filename": "a" * 256 + ".jpg"}).encode(), "filename must be at most 255 characters"),
        (b'{"filename": "a\\u0000.jpg"}', "filename contains a NUL character"),
        (b'{"filename": "\\ud800.jpg"}', "filename contains an unpaired surrogate U+D800"),
        (b'{"expires": 60}', "unknown field(s) 'expires': expected filename, expires_in"),
        (b"[60]", "the body must be a JSON object, got an array"),
        (b"expires_in=60", "the body must be a JSON object"),
        (
            b"[" * 2000,
            "the body must be a JSON object: JSON nested more than 64 levels deep",
        ),  # RecursionError
        (b"[" * 65 + b"]" * 65, "the body must be a JSON object: JSON nested more than 64 levels deep"),
    ],
)
@pytest.mark.parametrize("channel", CHANNELS)
def test_the_presign_body_is_strictly_typed(dev: DevProcess, channel: str, body: bytes, reason: str) -> None:
    url = base(dev, "upload", channel) + "/presign"
    answer = call(dev, "POST", url, user="alice", body=body, headers={"Content-Type": "application/json"})
    status, error = refusal(answer)
    assert status == 400 and error.startswith(reason), error


@pytest.mark.parametrize(
    "query",
    [
        {"expires": "\u00b2\u00b2\u00b2\u00b2", "signature": "0" * 64},  # superscript digits
        {"expires": "9" * 40, "signature": "0" * 64},
        {"expires": "99999999999", "signature": "\u00e9" * 64},  # compare_digest refuses non-ASCII str
        {"expires": "", "signature": ""},
    ],
)
def test_a_presigned_url_with_a_hostile_expiry_or_signature_is_403(
    dev: DevProcess, query: dict[str, str]
) -> None:
    answer = web.request("PUT", f"{dev.url}/upload/put/alice/x.jpg?{urlencode(query)}", body=images.jpeg())
    assert refusal(answer) == (403, "this upload URL is not valid")


# -- item 12: hostile parameters and deep JSON ----------------------------------------------------


def cursor_of(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).decode()


A_PHASHLESS_ID = "0" * 32
CATALOG_REFUSALS = [
    ({"min_width": "\u00b2"}, "min_width must be an integer from 0 to 2147483647"),
    ({"max_width": "2147483648"}, "max_width must be an integer from 0 to 2147483647"),
    ({"min_height": "\u0661\u0662"}, "min_height must be an integer"),  # Arabic-Indic digits
    ({"max_bytes": "9223372036854775808"}, "max_bytes must be an integer from 0 to 9223372036854775807"),
    ({"min_bytes": "9" * 5000}, "min_bytes must be an integer"),
    ({"min_bytes": "-1"}, "min_bytes must be an integer"),
    ({"format": "JP\x00G"}, "format contains a NUL character"),
    ({"format": "J" * 17}, "format must be at most 16 characters"),
    ({"camera": "\x00"}, "camera contains a NUL character"),
    ({"status": "ready\x00"}, "status must be one of"),
    ({"taken_after": "2024-13-01"}, "taken_after must be an ISO 8601 date or date-time"),
    ({"taken_before": "0001-01-01T00:00:00+14:00"}, "taken_before is out of range in UTC"),
    ({"limit": "\u00b2"}, "limit must be an integer from 1 to 200"),
    ({"limit": "2147483648"}, "limit must be an integer from 1 to 200"),
    ({"limit": "0"}, "limit must be an integer from 1 to 200"),
    ({"cursor": cursor_of(b"[" * 150 + b"]" * 150)}, "cursor is not one this API returned"),
    ({"cursor": cursor_of(json.dumps(["2024-01-01T00:00:00", "\x00" * 32]).encode())}, "cursor is not one"),
    ({"cursor": "\u00b2"}, "cursor is not one this API returned"),
    ({"cursor": "A" * 5000}, "cursor is not one this API returned"),
    ({"similar_to": "\x00"}, "similar_to must be an image id"),
    ({"filename": "a\x00"}, "filename contains a NUL character"),
    ({"sha256": "ab" * 31}, "sha256 must be 64 hex digits"),
    ({"sort": "name", "status": "ready"}, "unknown query parameter(s): sort; known: status, format"),
    (
        {
            "similar_to": A_PHASHLESS_ID,
            "cursor": cursor_of(json.dumps(["2024-01-01T00:00:00", "a" * 32]).encode()),
        },
        "cursor is not one this API returned for similar_to",
    ),
    (
        {"similar_to": A_PHASHLESS_ID, "max_distance": "\u00b2"},
        "max_distance must be an integer from 0 to 64",
    ),
    ({"similar_to": A_PHASHLESS_ID, "max_distance": "65"}, "max_distance must be an integer from 0 to 64"),
]


@pytest.mark.parametrize(("args", "reason"), CATALOG_REFUSALS, ids=[r for _, r in CATALOG_REFUSALS])
@pytest.mark.parametrize("channel", CHANNELS)
def test_hostile_catalog_parameters_are_400s_naming_the_parameter(
    dev: DevProcess, channel: str, args: dict[str, str], reason: str
) -> None:
    answer = call(dev, "GET", f"{base(dev, 'catalog', channel)}/images?{urlencode(args)}", user="alice")
    status, error = refusal(answer)
    assert status == 400 and error.startswith(reason), error


@pytest.mark.parametrize(
    "args",
    [
        {"min_width": "2147483647", "max_bytes": "9223372036854775807", "limit": "200"},
        {"min_height": "2147483647", "min_bytes": "0"},
        {"taken_after": "0001-01-01T00:00:00-14:00", "taken_before": "0001-01-02"},
        {"taken_after": "9999-12-31T23:59:59+14:00"},
        {"camera": "100%_\\", "format": "JPEG"},
    ],
)
def test_the_largest_values_each_column_holds_reach_postgresql(dev: DevProcess, args: dict[str, str]) -> None:
    answer = call(dev, "GET", f"{dev.url}/catalog/images?{urlencode(args)}", user="alice")
    assert answer.status == 200, answer.data
    assert json.loads(answer.data) == {
        "images": [],
        "next_cursor": None,
    }  # no image is that big, old or named


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize(
    "path", ["/images/" + "a" * 33, "/images/%C3%A9t%C3%A9", "/images/" + "a" * 33 + "/variants/thumb"]
)
def test_an_id_no_image_can_have_is_a_404(dev: DevProcess, channel: str, path: str) -> None:
    for method in ("GET", "DELETE") if path.count("/") == 2 else ("GET",):
        status, error = refusal(call(dev, method, base(dev, "catalog", channel) + path, user="alice"))
        assert status == 404 and error.startswith("no image"), error


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("path", ["/images/%00", "/images/%00/variants/thumb"])
def test_a_nul_in_an_id_is_refused_with_the_path_before_routing(
    dev: DevProcess, channel: str, path: str
) -> None:
    """A control character is never part of a canonical path (tests/security/test_paths.py)."""
    for method in ("GET", "DELETE") if path.count("/") == 2 else ("GET",):
        status, error = refusal(call(dev, method, base(dev, "catalog", channel) + path, user="alice"))
        assert status == 400 and "control characters are refused in paths" in error, error


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ({"limit": "\u00b2"}, "limit must be an integer from 1 to 1000"),
        ({"limit": "9" * 30}, "limit must be an integer from 1 to 1000"),
        ({"limit": "0"}, "limit must be an integer from 1 to 1000"),
        ({"type": "io.x\x00"}, "type contains a NUL character"),
        ({"type": "t" * 257}, "type must be at most 256 characters"),
    ],
)
@pytest.mark.parametrize("channel", CHANNELS)
def test_hostile_dead_letter_parameters_are_400s_naming_the_parameter(
    dev: DevProcess, channel: str, args: dict[str, str], reason: str
) -> None:
    status, error = refusal(call(dev, "GET", f"{base(dev, 'dead-letters', channel)}/?{urlencode(args)}"))
    assert status == 400 and error.startswith(reason), error


@pytest.mark.parametrize("channel", CHANNELS)
def test_a_dead_letter_id_no_letter_can_have_is_a_404(dev: DevProcess, channel: str) -> None:
    for method, suffix in (("GET", ""), ("DELETE", ""), ("POST", "/replay")):
        answer = call(dev, method, f"{base(dev, 'dead-letters', channel)}/{'x' * 300}{suffix}")
        assert refusal(answer) == (404, f"no dead letter {'x' * 300}")
        nul = call(dev, method, f"{base(dev, 'dead-letters', channel)}/%00{suffix}")  # never reaches it
        assert refusal(nul) == (
            400,
            "encoded slashes, backslashes, dots and control characters are refused in paths",
        )


@pytest.mark.parametrize(
    "content_type", ["application/cloudevents+json", "application/cloudevents-batch+json"]
)
def test_deep_json_at_the_broker_ingress_is_a_400(dev: DevProcess, content_type: str) -> None:
    answer = dev.request("POST", "/brokers/default", body=b"[" * DEEP, headers={"Content-Type": content_type})
    status, error = refusal(answer)
    assert (
        status == 400
        and error == "invalid CloudEvent: body is not valid JSON: JSON nested more than 64 levels deep"
    )


@pytest.mark.parametrize("channel", CHANNELS)
def test_deep_json_at_storage_events_is_a_400(dev: DevProcess, channel: str) -> None:
    webhook = call(
        dev, "POST", base(dev, "storage-events", channel) + "/", user=None, body=b'{"a":' * DEEP,
        headers=storage_events_headers(dev.data_dir),  # `datafrost dev` always sets the webhook token
    )  # fmt: skip
    assert refusal(webhook) == (400, "not a MinIO notification: JSON nested more than 64 levels deep")
    event = new_event(RABBITMQ_SOURCE_EVENT, "tests/inputs")
    headers, _ = to_binary(event)
    source = call(
        dev, "POST", base(dev, "storage-events", channel) + "/rabbitmq", body=b"[" * DEEP,
        headers={**headers, "Content-Type": "application/json"},
    )  # fmt: skip
    status, error = refusal(source)
    assert status == 400 and error.endswith("JSON nested more than 64 levels deep"), error


def catalog_event(payload: Any) -> tuple[dict[str, str], bytes]:
    kind = {events.ObjectCreated: events.OBJECT_CREATED, events.ImageAnalyzed: events.IMAGE_ANALYZED}
    return to_binary(new_event(kind[type(payload)], "tests/inputs", dataclasses.asdict(payload)))


def analyzed(key: str, **changes: Any) -> events.ImageAnalyzed:
    fields = dict(width=1, height=1, format="JPEG", mode="RGB", bytes=1, sha256="0" * 64, phash="0" * 16)
    fields.update(changes)
    return events.ImageAnalyzed(events.image_id("uploads", key), "uploads", key, **fields)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (
            events.ObjectCreated("uploads", "alice/big.jpg", 2**63, "e", "image/jpeg"),
            "bytes is 9223372036854775808",
        ),
        (
            events.ObjectCreated("uploads", "alice/a\x00.jpg", 1, "e", "image/jpeg"),
            "key contains a NUL character",
        ),
        (
            events.ObjectCreated("uploads", "alice/a.jpg", 1, "e", "t" * 256),
            "content_type is 256 characters long",
        ),
        (analyzed("alice/wide.jpg", width=2**31), "width is 2147483648, outside"),
        (analyzed("alice/f.jpg", format="F" * 17), "format is 17 characters long, over the limit of 16"),
        (analyzed("o" * 256 + "/x.jpg"), "owner is 256 characters long"),
    ],
)
@pytest.mark.parametrize("channel", CHANNELS)
def test_event_data_no_catalog_column_holds_is_refused_for_good(
    dev: DevProcess, channel: str, payload: Any, reason: str
) -> None:
    headers, body = catalog_event(payload)
    status, error = refusal(
        call(dev, "POST", base(dev, "catalog", channel) + "/", body=body, headers=headers)
    )
    assert status == 422 and "data cannot be stored: " + reason in error, error


@pytest.mark.parametrize(
    ("trigger", "reason"),
    [
        ({"parallelism": True}, "parallelism must be an integer from 1 to 1000, got True"),
        ({"parallelism": 10**9}, "parallelism must be an integer from 1 to 1000"),
        ({"delivery": {"retry": True}}, "delivery.retry must be an integer from 0 to 100, got True"),
        ({"delivery": {"retry": 10**6}}, "delivery.retry must be an integer from 0 to 100"),
        ({"delivery": {"timeout": [1]}}, "delivery.timeout must be a duration more than 0 to PT600S"),
        ({"delivery": {"dead_letter_sink": 5}}, "delivery.dead_letter_sink must be an http(s) URL"),
    ],
)
def test_the_trigger_api_takes_bounded_integers_only(
    dev: DevProcess, trigger: dict[str, Any], reason: str
) -> None:
    body = {"name": "hostile", "subscriber": "http://127.0.0.1:9/", **trigger}
    status, error = refusal(dev.request("POST", "/brokers/default/triggers", body=json.dumps(body)))
    assert status == 400 and error.startswith(f"invalid trigger: {reason}"), error
    assert dev.request("GET", "/brokers/default/triggers/hostile").status == 404


def test_deep_json_to_the_trigger_api_and_the_dev_token_is_a_400(dev: DevProcess) -> None:
    # deep, yet within the trigger API's 64 KiB (past it, the body is a 413 before it is read)
    status, error = refusal(dev.request("POST", "/brokers/default/triggers", body=b"[" * 60_000))
    assert status == 400 and error == "invalid trigger: JSON nested more than 64 levels deep"
    headers = {"Content-Type": "application/json", **dev_token_headers(dev.data_dir)}
    token = dev.request("POST", "/authz/dev/token", user=None, body=b"[" * DEEP, headers=headers)
    status, error = refusal(token)
    assert status == 400 and error.startswith('send JSON {"user": NAME'), error


@pytest.mark.parametrize("channel", CHANNELS)
def test_a_form_over_werkzeugs_limits_is_a_413_not_a_500(dev: DevProcess, channel: str) -> None:
    boundary = "hostile"
    parts = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="f{n}"\r\n\r\nv\r\n' for n in range(1500)
    )
    answer = call(
        dev, "POST", base(dev, "upload", channel) + "/", user="alice", body=f"{parts}--{boundary}--\r\n",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )  # fmt: skip
    status, error = refusal(answer)
    assert status == 413 and error.startswith("request entity too large"), error


# -- item 13: request heads over the limits ------------------------------------------------------


def raw_request(url: str, head: bytes) -> tuple[int, str, Any]:
    """Send `head` as is on a new connection: (status, Content-Type, decoded JSON body)."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=60)
    try:
        # the server may answer and close before it read everything: its answer is there all the same
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head)
        response = http.client.HTTPResponse(sock)
        response.begin()
        body = response.read()
    finally:
        sock.close()
    return response.status, response.getheader("Content-Type") or "", json.loads(body)


def head(path: str, fields: list[bytes]) -> bytes:
    return (
        b"GET "
        + path.encode()
        + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + b"".join(f + b"\r\n" for f in fields)
        + b"\r\n"
    )


def many_fields(count: int) -> list[bytes]:
    return [b"X-Field-%d: v" % n for n in range(count)]


def one_big_field(size: int) -> list[bytes]:
    return [b"X-Big: " + b"a" * size]


def test_the_gateway_refuses_oversized_heads_with_a_json_431(dev: DevProcess) -> None:
    status, content_type, body = raw_request(dev.url, head("/catalog/healthz", many_fields(EDGE.max_fields)))
    assert (status, content_type) == (431, "application/json")
    assert body == {
        "error": "request header fields too large: the request has 101 header fields, over the limit of 100"
    }
    for fields in (one_big_field(EDGE.max_bytes), one_big_field(4 * EDGE.max_bytes)):
        status, content_type, body = raw_request(dev.url, head("/catalog/healthz", fields))
        assert (status, content_type) == (431, "application/json")
        assert body["error"] == (
            "request header fields too large: "
            "the request line and header fields are over the limit of 61440 bytes"
        )
    status, _, body = raw_request(dev.url, head("/catalog/" + "a" * EDGE.max_bytes, []))  # the request line
    assert status == 431 and body["error"].startswith("request header fields too large")
    status, _, body = raw_request(dev.url, head("/catalog/healthz", [b"no colon here"]))
    assert (status, body) == (400, {"error": "bad request: Illegal header line."})


def test_what_the_gateway_takes_the_function_behind_it_takes(dev: DevProcess) -> None:
    """The most the edge lets through, plus what the gateway adds, is within a function's own limits."""
    status, _, body = raw_request(dev.url, head("/catalog/healthz", many_fields(EDGE.max_fields - 1)))
    assert (status, body) == (200, {"status": "ok", "function": "catalog"})
    near_limit = one_big_field(EDGE.max_bytes - 200)
    status, _, body = raw_request(dev.url, head("/catalog/healthz", near_limit))
    assert (status, body) == (200, {"status": "ok", "function": "catalog"})


def test_a_functions_own_server_refuses_oversized_heads_with_a_json_431(dev: DevProcess) -> None:
    url = base(dev, "catalog", "direct")
    status, content_type, body = raw_request(url, head("/healthz", many_fields(BEHIND_PROXY.max_fields)))
    assert (status, content_type) == (431, "application/json")
    assert body == {
        "error": "request header fields too large: the request has 121 header fields, over the limit of 120"
    }
    status, content_type, body = raw_request(url, head("/healthz", one_big_field(BEHIND_PROXY.max_bytes)))
    assert (status, content_type) == (431, "application/json")
    assert body == {"error": f"request header fields too large: {BEHIND_PROXY.too_many_bytes()}"}
    status, _, body = raw_request(url, head("/healthz", [b"no colon here"]))
    assert (status, body) == (400, {"error": "bad request: Illegal header line."})


@pytest.fixture(scope="module")
def func_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """storage-events as its Knative Service serves it: func's middleware, hypercorn."""
    work = tmp_path_factory.mktemp("func")
    function = FuncServed("storage-events", {"DATAFROST_DATA_DIR": str(work)}, work / "func.log")
    try:
        yield function.url
    finally:
        function.stop()


@pytest.mark.parametrize(
    "fields",
    [
        one_big_field(BEHIND_PROXY.max_bytes),  # h11 may see it whole: the function's own check refuses it
        one_big_field(4 * BEHIND_PROXY.max_bytes),  # h11 refuses what it buffers past its limit
    ],
    ids=["just-over", "four-times-over"],
)
def test_func_middleware_refuses_an_oversized_head_with_a_json_431(
    func_served: str, fields: list[bytes]
) -> None:
    status, content_type, body = raw_request(func_served, head("/healthz", fields))
    assert (status, content_type) == (431, "application/json")
    assert body == {"error": f"request header fields too large: {BEHIND_PROXY.too_many_bytes()}"}


def test_func_middleware_refuses_too_many_fields_and_malformed_heads_with_json(func_served: str) -> None:
    status, content_type, body = raw_request(
        func_served, head("/healthz", many_fields(BEHIND_PROXY.max_fields))
    )
    assert (status, content_type) == (431, "application/json")
    assert body == {
        "error": "request header fields too large: the request has 121 header fields, over the limit of 120"
    }
    status, content_type, body = raw_request(func_served, head("/healthz", [b"no colon here"]))
    assert (status, content_type, body) == (
        400, "application/json", {"error": "bad request: the server could not read the request"}
    )  # fmt: skip
    status, _, body = raw_request(func_served, head("/healthz", many_fields(BEHIND_PROXY.max_fields - 2)))
    assert (status, body) == (200, {"status": "ok", "function": "storage-events"})


def test_after_every_hostile_request_the_pipeline_still_works(dev: DevProcess) -> None:
    image_id = dev.upload_ready("alice", images.jpeg((48, 36)))
    status, record = dev.json("GET", f"/catalog/images/{image_id}", user="alice")
    assert status == 200 and (record["width"], record["height"]) == (48, 36)


@pytest.mark.parametrize("channel", CHANNELS)
def test_a_body_larger_than_any_function_takes_is_a_json_413_before_it_is_read(
    dev: DevProcess, channel: str
) -> None:
    limit = 50 * 1024 * 1024 + 64 * 1024  # DATAFROST_MAX_UPLOAD_BYTES and a multipart form's allowance
    url = base(dev, "upload", channel)
    path = urlsplit(url).path + "/"
    declared = b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n" % (
        path.encode(),
        limit + 1,
    )
    status, content_type, body = raw_request(url, declared)
    assert (status, content_type) == (413, "application/json")
    assert body == {"error": f"request body too large: over the limit of {limit} bytes"}
