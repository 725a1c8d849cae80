"""The one image's entry for Knative Functions (`func build` / `func deploy`).

func's Python scaffolding imports `function.new()` and serves the instance with its ASGI middleware
(hypercorn on :8080, `/health/liveness` and `/health/readiness` answered from `alive`/`ready`).
Each Knative Service picks its DataFrost function with FUNCTION_SOURCE (`functions/<name>/main.py`)
and FUNCTION_TARGET (`handle`): `start` loads it with functions-framework, the same WSGI app
`datafrost dev` runs, and `handle` bridges each ASGI request to it in a worker thread.

Request and response bodies are buffered (the functions cap them: DATAFROST_MAX_UPLOAD_BYTES).
Request heads get the limits of a server behind a proxy (`shared.http_limits.BEHIND_PROXY`), and what
hypercorn refuses itself (a head over the size limit: 431, a malformed request: 400) is answered with
the JSON error body every other answer has (`answer_protocol_errors_with_json`).
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from http import HTTPStatus
from pathlib import Path
from typing import Any

from shared.errors import error_body
from shared.http_limits import BEHIND_PROXY, HEADER_FIELDS_TOO_LARGE

ROOT = Path(__file__).resolve().parents[1]
Scope = Mapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def wsgi_environ(scope: Scope, body: bytes) -> dict[str, Any]:
    """PEP 3333 environ for one ASGI HTTP request (PEP 3333 strings are latin-1 decoded bytes)."""
    path = scope["path"].encode("utf-8").decode("latin-1")  # decoded, as PEP 3333 says PATH_INFO is
    raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")
    server = scope.get("server") or ("localhost", 8080)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "RAW_URI": raw_path.decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "REMOTE_ADDR": (scope.get("client") or ("", 0))[0],
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for raw_name, raw_value in scope.get("headers", []):
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        value = raw_value.decode("latin-1")
        if name == "CONTENT_LENGTH":
            continue  # the buffered body's length is the truth
        key = name if name == "CONTENT_TYPE" else f"HTTP_{name}"
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ


def head_problem(scope: Scope) -> str | None:
    """Why the request's head is over BEHIND_PROXY's limits, or None. hypercorn counts no fields, and
    its byte limit holds only for a head that arrives in pieces (h11 checks what it has buffered)."""
    headers = scope.get("headers", [])
    if len(headers) > BEHIND_PROXY.max_fields:
        return BEHIND_PROXY.too_many_fields(len(headers))
    line = len(scope["method"]) + len(scope.get("raw_path") or b"") + len(scope.get("query_string", b"")) + 12
    if line + sum(len(name) + len(value) + 4 for name, value in headers) > BEHIND_PROXY.max_bytes:
        return BEHIND_PROXY.too_many_bytes()
    return None


def call_wsgi(app: WsgiApp, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
    """Run the WSGI app to completion: status, headers, body."""
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started[:] = [int(status.split(" ", 1)[0]), headers]
        return lambda data: None  # the legacy write() callable; functions-framework never uses it

    chunks = app(environ, start_response)
    try:
        body = b"".join(chunks)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    return started[0], started[1], body


class DataFrostFunction:
    """func's function instance: start/stop, alive/ready, and an ASGI `handle`."""

    def __init__(self) -> None:
        self.app: WsgiApp | None = None

    def start(self, cfg: Mapping[str, str]) -> None:
        from functions.spec import TARGET
        from shared.function_app import function_app  # the function's own imports happen at start

        source = Path(cfg.get("FUNCTION_SOURCE") or os.environ["FUNCTION_SOURCE"])
        target = cfg.get("FUNCTION_TARGET") or os.environ.get("FUNCTION_TARGET", TARGET)
        source = source if source.is_absolute() else ROOT / source
        self.app = function_app(target, str(source))

    def stop(self) -> None:
        self.app = None

    def alive(self) -> tuple[bool, str]:
        return True, "OK"

    def ready(self) -> tuple[bool, str]:
        return (self.app is not None, "OK" if self.app is not None else "function not loaded")

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app is None:
            await _send(send, 503, [("content-type", "application/json")], b'{"error": "not started"}')
            return
        problem = head_problem(scope)
        if problem is not None:
            refusal = error_body(f"request header fields too large: {problem}")
            await _send(send, HEADER_FIELDS_TOO_LARGE, [("content-type", "application/json")], refusal)
            return
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        status, headers, payload = await asyncio.to_thread(
            call_wsgi, self.app, wsgi_environ(scope, bytes(body))
        )
        await _send(send, status, headers, payload)


async def _send(send: Send, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
    encoded = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    await send({"type": "http.response.start", "status": status, "headers": encoded})
    await send({"type": "http.response.body", "body": body})


def protocol_error_message(status: int) -> str:
    """What a refusal by the HTTP server itself says (it has no more than the status to go on)."""
    if status == HEADER_FIELDS_TOO_LARGE:
        return f"request header fields too large: {BEHIND_PROXY.too_many_bytes()}"
    return f"{HTTPStatus(status).phrase.lower()}: the server could not read the request"


def answer_protocol_errors_with_json() -> None:
    """hypercorn, which func's middleware serves with, limits a request head to its own 16 KiB and
    answers what h11 refuses with an empty body; func's scaffolding builds hypercorn's Config itself,
    so its default is set here (the head limit) and its error answer replaced (a JSON body)."""
    try:
        import h11
        from hypercorn.config import Config
        from hypercorn.protocol.h11 import H11Protocol
    except ImportError:  # not under func's middleware: nothing to adjust
        return
    Config.h11_max_incomplete_size = BEHIND_PROXY.max_bytes

    async def send_json_error(self: Any, status_code: int) -> None:
        body = error_body(protocol_error_message(status_code))
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
            *self.config.response_headers("h11"),
        ]
        await self._send_h11_event(h11.Response(status_code=status_code, headers=headers))
        await self._send_h11_event(h11.Data(data=body))
        await self._send_h11_event(h11.EndOfMessage())

    setattr(H11Protocol, "_send_error_response", send_json_error)  # noqa: B010 (a method, replaced)


def new() -> DataFrostFunction:
    """func's constructor: one instance per process (func's scaffolding calls it before serving)."""
    answer_protocol_errors_with_json()
    return DataFrostFunction()
