"""The one reading of a request's path: the raw request-target, checked and decoded once.

Routing and authorization must judge the same path. Servers, proxies and clients each normalise
paths their own way (dot segments removed, `%2F` decoded to `/`, doubled slashes merged), so a path
that *could* be read two ways is refused instead: with `RefusedPath` (answered 400) before anything
routes on it. What is left decodes to exactly one string, which the gateway routes on, `authz`
checks, and the function serves.

Refused: dot segments (`.`, `..`), encoded slashes, backslashes and dots (`%2F`, `%5C`, `%2E`),
doubled slashes, backslashes, NUL and other control characters (raw or encoded), malformed
percent-encoding and bytes that are not UTF-8.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote, unquote_to_bytes, urlsplit

_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")  # a % not followed by two hex digits
_AMBIGUOUS_ESCAPES = re.compile(r"%(2[Ff]|5[Cc]|2[Ee]|[01][0-9A-Fa-f]|7[Ff])")  # / \ . and controls
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ABSOLUTE_FORM = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")  # `GET http://host/path HTTP/1.1`
SAFE = "/:@!$&'()*+,;=-._~"  # what stays unescaped when a canonical path is sent on (RFC 3986 pchar)


class RefusedPath(ValueError):
    """A path that could be read more than one way: refused (400) whatever the token."""


def canonical_path(raw: str) -> str:
    """The decoded path of a raw, percent-encoded request path; RefusedPath names what is wrong."""
    if not raw.startswith("/"):
        raise RefusedPath("the path must start with '/'")
    if "\\" in raw or _CONTROL.search(raw):
        raise RefusedPath("backslashes and control characters are refused in paths")
    if _PERCENT.search(raw):
        raise RefusedPath("malformed percent-encoding in the path")
    if _AMBIGUOUS_ESCAPES.search(raw):
        raise RefusedPath("encoded slashes, backslashes, dots and control characters are refused in paths")
    if "//" in raw:
        raise RefusedPath("empty path segments ('//') are refused")
    if any(segment in (".", "..") for segment in raw.split("/")):
        raise RefusedPath("paths with '.' or '..' segments are refused")
    try:  # WSGI strings are bytes decoded as latin-1 (PEP 3333)
        return unquote_to_bytes(raw.encode("latin-1")).decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        raise RefusedPath("the path is not UTF-8") from None


def checked(path: str) -> str:
    """`path` (already decoded) if it is canonical: RefusedPath for what `canonical_path` refuses."""
    return canonical_path(encoded(path)) if path.startswith("/") else canonical_path(path)


def raw_path(environ: Mapping[str, Any]) -> str:
    """The request-target's path as the client sent it (REQUEST_URI or RAW_URI), else PATH_INFO's
    re-encoding; an absolute-form target (`http://host/path`) gives its path."""
    target = environ.get("REQUEST_URI") or environ.get("RAW_URI")
    if not target:  # PATH_INFO is already decoded: encode it again, as the client would have sent it
        path_info = str(environ.get("PATH_INFO", "")).encode("latin-1")
        return quote(path_info, safe=SAFE) or "/"
    if _ABSOLUTE_FORM.match(target):  # anything else not starting with "/" is refused as it is
        target = urlsplit(target).path or "/"
    return target.split("?", 1)[0]


def request_path(environ: Mapping[str, Any]) -> str:
    """The canonical path of a WSGI request; RefusedPath when it could be read two ways."""
    return canonical_path(raw_path(environ))


def encoded(path: str) -> str:
    """A canonical path as it goes on the wire again (each hop decodes it back to the same string).

    Dots are never escaped and no canonical path has a dot segment, so no client library's
    normalisation (urllib3 removes dot segments) can change it on the way.
    """
    return quote(path, safe=SAFE)


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def refuse_ambiguous_paths(app: WsgiApp) -> WsgiApp:
    """WSGI middleware: a request whose path is not canonical gets a JSON 400 before `app` (a
    framework's own router, say) can redirect or normalise it."""

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            request_path(environ)
        except RefusedPath as exc:
            body = json.dumps({"error": str(exc)}).encode()
            headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            start_response("400 Bad Request", headers)
            return [body]
        return app(environ, start_response)

    return guarded
