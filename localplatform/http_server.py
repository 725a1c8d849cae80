"""The HTTP server of the gateway and of every function process: cheroot, a thread pool that calls the
app as soon as the headers are in.

That order is the point: the gateway authorizes a request and checks its Content-Length against the
route's limit before a byte of the body is received, and a request refused then is answered and its
connection closed without reading the body (a server that buffers whole bodies before calling the app,
as waitress does, lets an anonymous client make it receive anything up to its global limit). Bodies
are read as the proxy streams them. The server's own refusals (a body over the largest limit, a
request line or headers too large, a malformed request) are JSON like every other answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from cheroot import errors as cheroot_errors
from cheroot import server as cheroot_server
from cheroot import wsgi

from shared.http_limits import HeaderLimits

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
THREADS = 64  # the gateway's: a proxied request holds one until its function answers, and a function
# may call back into the gateway (K_SINK) meanwhile, so keep well above the deliveries
IDLE_SECONDS = 60  # a connection that sends nothing this long is closed


class _JsonErrorRequest(cheroot_server.HTTPRequest):
    """cheroot's request: its own refusals as JSON `{"error": ...}`, a head over the byte or the field
    limit as a 431 (`shared.http_limits`), and an unread body closing its connection."""

    def read_request_headers(self) -> bool:
        if not super().read_request_headers():
            return False
        limits: HeaderLimits = self.server.header_limits
        fields = len(self.inheaders)  # a field sent twice is merged: it counts once here
        if fields > limits.max_fields:
            self.simple_response("431 Request Header Fields Too Large", limits.too_many_fields(fields))
            return False
        return True

    def simple_response(self, status: Any, msg: Any = "") -> None:
        status = str(status)
        text = (msg.decode("latin-1") if isinstance(msg, bytes) else str(msg)).strip()
        status, reason = _refusal(status, text, self.server)
        body = json.dumps({"error": reason}).encode()
        head = [
            f"{self.server.protocol} {status}",
            f"Content-Length: {len(body)}",
            "Content-Type: application/json",
        ]
        if status[:1] == "4":
            self.close_connection = True  # the rest of the request was not read: never reuse it
            head.append("Connection: close")
        try:
            self.conn.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        except OSError as exc:
            if exc.args and exc.args[0] not in cheroot_errors.socket_errors_to_ignore:
                raise

    def send_headers(self) -> None:
        """A request answered before its body was read (refused from its headers) closes its
        connection: the unread bytes must never be taken for the next request."""
        rfile = getattr(self, "rfile", None)
        unread = getattr(rfile, "remaining", 0) or (
            isinstance(rfile, cheroot_server.ChunkedRFile) and not rfile.closed
        )
        if unread:
            self.close_connection = True
        super().send_headers()


def _refusal(status: str, text: str, server: Any) -> tuple[str, str]:
    """The status and JSON reason of one of cheroot's own refusals."""
    limits: HeaderLimits = server.header_limits
    code = status[:3]
    if code == "431":
        return status, f"request header fields too large: {text}"
    if code == "414" or (code == "413" and "header" in text.lower()):  # the head, line or fields
        return (
            "431 Request Header Fields Too Large",
            f"request header fields too large: {limits.too_many_bytes()}",
        )
    if code == "413":
        return status, f"request body too large: over the limit of {server.max_request_body_size} bytes"
    if code == "400":
        return status, f"bad request: {text}" if text else "bad request"
    return status, text or status


class _Connection(cheroot_server.HTTPConnection):
    RequestHandlerClass = _JsonErrorRequest


class _Server(wsgi.Server):
    ConnectionClass = _Connection
    header_limits: HeaderLimits


class HttpServer:
    """Bound and listening when this returns (port 0 picks a free port, known at once as `port`);
    requests wait in the backlog until `serve_forever` runs. `app` may be replaced until then.
    `shutdown` (from any thread) stops accepting and waits briefly for the requests being served."""

    def __init__(
        self, host: str, port: int, app: WsgiApp, max_body: int, limits: HeaderLimits, threads: int = THREADS
    ) -> None:
        self.app = app
        self._server = _Server(
            (host, port),
            self._call,
            numthreads=threads,
            request_queue_size=1024,
            timeout=IDLE_SECONDS,
            shutdown_timeout=5,
            server_name="datafrost",
        )
        self._server.max_request_body_size = max_body  # refused (413) from its headers
        self._server.max_request_header_size = limits.max_bytes  # request line and fields together
        self._server.header_limits = limits
        self._server.prepare()  # binds and listens: an OSError here (port in use) is the caller's
        self.port = int(self._server.bind_addr[1])
        self._shut = False

    def _call(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ["wsgi.input_terminated"] = True  # cheroot's input ends where the body does (chunked too)
        return self.app(environ, start_response)

    def serve_forever(self) -> None:
        self._server.serve()

    def shutdown(self) -> None:
        """Stop accepting, close the listening socket, let running requests finish (a few seconds)."""
        if self._shut:
            return
        self._shut = True
        self._server.stop()
