"""Request bodies are checked before they are read, and streamed, never held whole.

The attack: a 1,000 MiB POST to any path took the gateway to 1.4 GiB, four concurrent 500 MiB posts
to 3.4 GB, because the body was read into memory (for authz, then for the proxy) before any check.
Now authz decides on the headers alone, each route declares its body limit (`Route.max_body`), the
gateway and the function answer 413 from Content-Length before reading, the servers refuse anything
over the largest limit as it arrives, and the proxy streams. Peak RSS is sampled while the bodies run.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.support.memory import MIB, PeakRss, rss
from tests.support.platform import DevProcess

GATEWAY_GROWTH_BUDGET = 64 * MIB  # what the gateway may grow by while hostile bodies stream through
FUNCTION_MEMORY_LIMIT = 512 * MIB  # the functions' limit in the Knative manifests (Resources)


def send_headers(
    port: int, path: str, length: int, token: str | None, chunked: bool = False
) -> socket.socket:
    """A POST whose headers announce `length` bytes (or chunked); no body sent yet."""
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
    head += "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {length}\r\n"
    if token:
        head += f"Authorization: Bearer {token}\r\n"
    conn = socket.create_connection(("127.0.0.1", port), timeout=60)
    conn.sendall((head + "\r\n").encode())
    return conn


def answer(conn: socket.socket) -> tuple[int, str, bytes]:
    """(status, content type, body) of the response, read up to the end of its body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers.get("content-type", ""), body


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevProcess]:
    platform = DevProcess(tmp_path_factory.mktemp("bodies") / "data", "--keep-warm").start()
    yield platform
    platform.stop()


def gateway_port(dev: DevProcess) -> int:
    return int(dev.url.rsplit(":", 1)[1])


def test_a_body_over_the_routes_limit_is_413_before_any_of_it_is_sent(dev: DevProcess) -> None:
    """Only headers go out: the JSON 413 comes back at once, so nothing was waiting for the body."""
    token = dev.token("admin")
    for path, limit in (
        ("/catalog/", 1048576),  # DATAFROST_MAX_EVENT_BYTES
        ("/dead-letters/", 1048576),
        ("/upload/presign", 1048576),
        ("/brokers/default", 1048576),
        ("/brokers/default/triggers", 65536),  # a small JSON document
    ):
        conn = send_headers(gateway_port(dev), path, 5 * MIB, token)
        status, content_type, body = answer(conn)
        conn.close()
        assert (status, content_type) == (413, "application/json"), (path, body)
        assert f"limit of {limit} bytes" in json.loads(body)["error"], path


def test_a_function_checks_the_limit_itself_when_called_directly(dev: DevProcess) -> None:
    """Straight at a function's port: its server refuses a body over the function's largest limit,
    its runtime a body over the route's own (upload takes 50 MiB on POST /, 1 MiB on /presign)."""
    for name, path, length, reason in (
        ("catalog", "/", 5 * MIB, "request body too large: over the limit of 1048576 bytes"),  # the server
        ("upload", "/presign", 5 * MIB, "limit of 1048576 bytes"),  # the runtime, from the headers
        ("upload", "/", 60 * MIB, "request body too large: over the limit of 52494336 bytes"),
    ):
        dev.request("GET", f"/{name}/healthz", user=None)
        port = int(dev.functions()[name]["url"].rsplit(":", 1)[1])
        conn = send_headers(port, path, length, dev.token("admin"))
        status, content_type, body = answer(conn)
        conn.close()
        assert (status, content_type) == (413, "application/json"), (name, path, body)
        assert reason in json.loads(body)["error"], (name, path, body)


def test_an_anonymous_giant_body_is_refused_from_its_headers(dev: DevProcess) -> None:
    for path in ("/upload", "/catalog/images", "/nothing-here"):
        conn = send_headers(gateway_port(dev), path, 1000 * MIB, None)
        status, _, _ = answer(conn)  # nothing of the body was sent: the answer cannot wait for it
        conn.close()
        assert status in (401, 404, 413), (path, status)


def test_a_chunked_body_over_the_limit_is_refused_as_it_arrives(dev: DevProcess) -> None:
    conn = send_headers(gateway_port(dev), "/catalog/", 0, dev.token("admin"), chunked=True)
    chunk = b"x" * MIB
    status = None
    try:
        for _ in range(80):  # 80 MiB in 1 MiB chunks: over every limit
            conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    except OSError:
        pass  # the server stopped reading: it refused the body
    with contextlib.suppress(OSError):
        conn.sendall(b"0\r\n\r\n")
    status, _, _ = answer(conn)
    conn.close()
    assert status == 413


def test_memory_stays_bounded_while_big_bodies_stream_through(dev: DevProcess) -> None:
    """Four 40 MiB uploads at once (under the 50 MiB limit; not images, so refused 415 after reading):
    the gateway streams them (it may not grow by their size) and the upload function stays under its
    memory limit."""
    assert dev.proc is not None
    token = dev.token("admin")
    dev.request("GET", "/upload/healthz", user=None)
    upload_pid = dev.functions()["upload"]["pid"]
    body = b"\x00" * (40 * MIB)
    statuses: list[int] = []

    def post() -> None:
        conn = send_headers(gateway_port(dev), "/upload", len(body), token)
        view = memoryview(body)
        for start in range(0, len(body), MIB):
            conn.sendall(view[start : start + MIB])
        statuses.append(answer(conn)[0])
        conn.close()

    baseline = rss(dev.proc.pid)
    with PeakRss(dev.proc.pid) as gateway, PeakRss(upload_pid) as upload:
        senders = [threading.Thread(target=post) for _ in range(4)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(120)
        time.sleep(0.2)
    assert statuses == [415] * 4
    assert gateway.peak - baseline < GATEWAY_GROWTH_BUDGET, (baseline, gateway.peak)
    assert upload.peak < FUNCTION_MEMORY_LIMIT, upload.peak
