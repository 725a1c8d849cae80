"""The gateway's side of external authorization, as Kourier does it with `KOURIER_EXTAUTHZ_PROTOCOL=http`.

Before proxying, the gateway asks the `authz` function about the client's method and path (under the
path prefix `/check`), passing only `Host` and `Authorization`, before any of the body is read (authz
decides on the headers; Kourier would also send up to 8 KiB of it, which authz ignores). A 200 lets
the request through; any other answer is returned to the client as it is (401, 403, 404 or 405 with a
JSON reason).
"""

from __future__ import annotations

import logging

import urllib3
from werkzeug.wrappers import Request, Response

from functions.registry import route_prefix, served_by
from functions.spec import Serves
from localplatform.processes import FunctionStartError, ProcessManager
from shared.errors import error_body
from shared.paths import encoded

log = logging.getLogger("datafrost.ext-authz")
FORWARDED_HEADERS = ("Host", "Authorization")
PARTIAL_BODY_HEADER = "x-envoy-auth-partial-body"
ANSWER_HEADERS = ("Content-Type", "WWW-Authenticate", "Allow")
INTERNAL_HEADER_PREFIX = "x-datafrost-"  # identity headers only authz may set: a client's are dropped
TIMEOUT = urllib3.Timeout(connect=2.0, read=10.0)


class ExtAuthz:
    """Asks authz about each request; fails closed when authz cannot answer."""

    def __init__(self, processes: ProcessManager) -> None:
        authz, check = served_by(Serves.EXT_AUTHZ)  # the function that plays Kourier's ext-authz service
        self._function, self._prefix = authz.name, route_prefix(check.path)
        self._processes = processes
        self._http = urllib3.PoolManager(maxsize=32, retries=False)

    def deny(self, request: Request, path: str) -> Response | None:
        """None to let the request through, else the answer the client gets (`path`: canonical)."""
        headers = {name: request.headers[name] for name in FORWARDED_HEADERS if name in request.headers}
        if request.content_length:
            headers[PARTIAL_BODY_HEADER] = "true"
        target = (
            self._prefix
            + encoded(path)
            + ("?" + request.query_string.decode() if request.query_string else "")
        )
        try:
            with self._processes.functions[self._function].use() as base:
                answer = self._http.request(request.method, base + target, headers=headers, timeout=TIMEOUT)
        except (FunctionStartError, urllib3.exceptions.HTTPError) as exc:
            log.error("authz did not answer (%s): request refused", type(exc).__name__)
            return Response(error_body("authorization is unavailable"), 503, mimetype="application/json")
        if answer.status == 200:
            return None
        kept = {k: answer.headers[k] for k in ANSWER_HEADERS if k in answer.headers}
        return Response(answer.data, status=answer.status, headers=kept)


def strip_internal_headers(request: Request) -> dict[str, str]:
    """The request's headers without any identity header a client may have forged."""
    return {k: v for k, v in request.headers.items() if not k.lower().startswith(INTERNAL_HEADER_PREFIX)}
