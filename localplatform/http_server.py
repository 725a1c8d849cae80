"""waitress as DataFrost serves with it (the gateway, every function process): head limits, JSON errors.

waitress answers some requests itself, before or instead of the app: a request head over its size
limit (431), a malformed request (400), a body over its size limit (413), a transfer coding it does not
take (501), and a 500 when the app fails before answering; each as a text/plain page. Here those
answers carry the JSON error body every other answer has. waitress limits a head by bytes only: a
request with more header fields than `HeaderLimits.max_fields` is refused here too (431), before the
app sees it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import waitress
import waitress.server
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.task import ErrorTask
from waitress.utilities import (
    Error,
    InternalServerError,
    RequestEntityTooLarge,
    RequestHeaderFieldsTooLarge,
)

from shared.errors import error_body
from shared.http_limits import HeaderLimits, head_over

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_PLACEHOLDER_HEAD = b"GET / HTTP/1.0\r\n"  # what waitress parses in place of a head it refuses
DEFAULT_MAX_BODY_BYTES = 1024**3 - 1  # waitress's own default


class TooManyHeaderFields(RequestHeaderFieldsTooLarge):
    """More header fields than the limit (waitress's own 431 is about bytes)."""


class JsonErrorTask(ErrorTask):
    """waitress's own error answers, as `{"error": "..."}` with the same status."""

    def execute(self) -> None:
        error = self.request.error
        body = error_body(_message(error, self.channel.adj))
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


def _message(error: Error, adj: Any) -> str:
    if isinstance(error, TooManyHeaderFields):
        return f"request header fields too large: {error.body}"
    if isinstance(error, RequestHeaderFieldsTooLarge):
        return f"request header fields too large: {head_over(adj.max_request_header_size)}"
    if isinstance(error, RequestEntityTooLarge):
        return f"request body too large: over the limit of {adj.max_request_body_size - 1} bytes"
    if isinstance(error, InternalServerError):
        return "internal error"  # never a traceback
    return f"{error.reason.lower()}: {error.body}"


def channel_class(limits: HeaderLimits) -> type[HTTPChannel]:
    """waitress's connection handler with the field-count limit and JSON error answers."""

    class CountingParser(HTTPRequestParser):
        def parse_header(self, header_plus: bytes) -> None:
            fields = header_plus.strip().count(b"\n")  # one line per field after the request line
            if fields > limits.max_fields:
                super().parse_header(_PLACEHOLDER_HEAD)  # as waitress does for a head over its size
                self.error = TooManyHeaderFields(limits.too_many_fields(fields))
                return
            super().parse_header(header_plus)

    class JsonErrorChannel(HTTPChannel):
        parser_class = CountingParser
        error_task_class = JsonErrorTask

    return JsonErrorChannel


def create_server(
    app: WsgiApp, limits: HeaderLimits, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, **options: Any
) -> waitress.server.BaseWSGIServer:
    """`waitress.create_server` for one listening socket, with `limits`, a body of at most
    `max_body_bytes` (413 beyond) and JSON error answers."""
    server = waitress.create_server(
        app,
        max_request_header_size=limits.max_bytes,
        max_request_body_size=max_body_bytes + 1,  # waitress refuses a body of its limit's size already
        **options,
    )
    assert isinstance(server, waitress.server.BaseWSGIServer)  # one socket: not a MultiSocketServer
    server.channel_class = channel_class(limits)
    return server
