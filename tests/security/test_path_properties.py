"""Properties of the one path reading (`shared.paths`), over arbitrary raw paths: every path is either
refused or read as one canonical path that every later hop reads the same way, so what the gateway
routes, what authz checks and what the function serves can never differ."""

from __future__ import annotations

import contextlib

from hypothesis import example, given, settings
from hypothesis import strategies as st
from urllib3.util import parse_url
from werkzeug.test import EnvironBuilder

from functions.registry import gateway_policy
from shared.auth.policy import NoRoute
from shared.paths import RefusedPath, canonical_path, encoded, request_path

# Pieces an attacker likes, plus anything at all.
PIECES = st.sampled_from(
    ["/", "//", ".", "..", "%2e", "%2E", "%2f", "%2F", "%5c", "\\", "%00", "\x00", "%", "%zz", "%ff",
     "%C3%A9", "é", " ", "%20", "dead-letters", "catalog", "images", "x", "?", "#", ";", "%3B", "~"]
)  # fmt: skip
RAW = st.one_of(
    st.lists(PIECES, max_size=12).map("".join),
    st.text(max_size=40),
    st.lists(PIECES, max_size=12).map(lambda parts: "/" + "".join(parts)),
)


def through_urllib3(path: str) -> str:
    """The path of a URL as urllib3 sends it (it removes dot segments, among other things)."""
    return parse_url("http://127.0.0.1:1" + path).path or "/"


@settings(max_examples=3000, deadline=None)
@given(RAW)
@example("/dead-letters/..")
@example("/dead-letters/../x")
@example("/catalog/%2e%2e/dead-letters/")
def test_a_path_is_refused_or_read_one_way_by_every_hop(raw: str) -> None:
    try:
        path = canonical_path(raw)
    except RefusedPath:
        return
    segments = path.split("/")
    assert path.startswith("/") and "//" not in path and "." not in segments and ".." not in segments
    assert not any(ord(c) < 0x20 or c == "\x7f" for c in path) and "\\" not in path
    # the gateway sends `encoded(path)` on: urllib3 leaves it alone, and the next hop reads the same path
    assert through_urllib3(encoded(path)) == encoded(path)
    assert canonical_path(encoded(path)) == path


@settings(max_examples=2000, deadline=None)
@given(RAW)
def test_what_the_gateway_routes_is_what_authz_checks_and_the_function_serves(raw: str) -> None:
    """The three readings of one request: the gateway's, authz's (under /check, sent by urllib3) and
    the function's (the rest of the path, sent by urllib3)."""
    environ = {"REQUEST_URI": raw, "PATH_INFO": "/unused"}
    try:
        gateway = request_path(environ)
    except RefusedPath:
        return
    _function, _, rest = gateway.lstrip("/").partition("/")  # the gateway routes on the first segment
    authz = canonical_path(through_urllib3("/check" + encoded(gateway)))[len("/check") :]
    served = canonical_path(through_urllib3(encoded("/" + rest)))
    assert authz == gateway
    assert served == "/" + rest
    with contextlib.suppress(NoRoute):  # no route is fine; a RefusedPath here would fail the test
        gateway_policy().lookup("GET", gateway)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30))
def test_werkzeug_and_the_raw_reading_agree_on_canonical_paths(text: str) -> None:
    """For a path a client encodes properly, the raw reading equals what the framework decodes."""
    path = "/" + text
    try:
        canonical = canonical_path(encoded(path))
    except RefusedPath:
        return
    environ = EnvironBuilder(path=encoded(path)).get_environ()
    assert request_path(environ) == canonical == path
