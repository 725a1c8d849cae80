"""A real HTTP server that receives CloudEvents and answers as a test scripts it (fails on purpose)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from eventing.cloudevent import CloudEvent
from eventing.http_codec import parse_http


@dataclass(frozen=True)
class Received:
    event: CloudEvent
    at: float  # time.monotonic()
    path: str


Answer = Callable[[CloudEvent, int], Response]  # (event, how many times this id was seen) -> response


def status(code: int, body: bytes = b"") -> Response:
    return Response(body, status=code)


class Sink:
    """Records every event POSTed to it; `answer` decides the response (default 204)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.answer: Answer = lambda event, n: status(204)
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        (event,) = parse_http(request.headers, request.get_data(), max_bytes=10 * 1024 * 1024)
        with self._lock:
            n = self._seen[event.id] = self._seen.get(event.id, 0) + 1
            self.received.append(Received(event, time.monotonic(), request.path))
            self._changed.notify_all()
        return self.answer(event, n)(environ, start_response)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Block until at least `count` requests arrived; return them (fails the test on timeout)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"sink got {len(self.received)} requests, expected {count}")
                self._changed.wait(left)
            return list(self.received)

    def ids(self) -> list[str]:
        with self._lock:
            return [r.event.id for r in self.received]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
