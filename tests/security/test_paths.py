"""Path confusion: a path that could be read two ways is refused (400) before anything routes on it.

The attack: `GET /dead-letters/..` sent as a raw path with a viewer token listed every dead letter,
because the gateway picked the function from the raw path while the path sent to authz was
normalised on the way (urllib3 removes dot segments), so authz judged `/` and the function served
its list. Now the gateway, authz and every function read the raw path once (`shared.paths`) and
refuse it when it is not canonical. This walks a matrix of encodings over every route, through the
gateway and straight at each function's own port, as raw bytes on a socket (no client library in
between to normalise anything away).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from functions.registry import GATEWAY_ROUTES, all_specs
from shared.auth.identity import ADMIN, VIEWER
from tests.support import images
from tests.support.platform import DevProcess, add_dev_users

# How one route's path is made ambiguous: each turns a canonical path into one some hop reads otherwise.
TWISTS = {
    "dot-dot at the end": lambda p: p.rstrip("/") + "/..",
    "dot-dot in the middle": lambda p: p.rstrip("/") + "/../x",
    "dot segment": lambda p: "/." + p,
    "encoded dot-dot": lambda p: p.rstrip("/") + "/%2e%2e",
    "half-encoded dot-dot": lambda p: p.rstrip("/") + "/.%2E/",
    "encoded slash": lambda p: p.rstrip("/") + "%2f",
    "encoded backslash": lambda p: p.rstrip("/") + "%5C..",
    "doubled slash in front": lambda p: "/" + p,
    "doubled slash inside": lambda p: p.replace("/", "//", 2)[1:] if p.count("/") > 1 else p + "//",
    "backslash": lambda p: p.rstrip("/") + "\\..",
    "encoded NUL": lambda p: p.rstrip("/") + "%00",
    "raw NUL": lambda p: p.rstrip("/") + "\x00",
    "malformed escape": lambda p: p.rstrip("/") + "%zz",
    "not UTF-8": lambda p: p.rstrip("/") + "%ff%fe",
}


def raw_request(
    port: int, method: str, path: str, token: str | None, host: str = "127.0.0.1"
) -> tuple[int, bytes]:
    """Send the request line exactly as given; (status, body)."""
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: 0\r\n"
    if token:
        head += f"Authorization: Bearer {token}\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall((head + "\r\n").encode("latin-1"))
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def concrete(path: str) -> str:
    """A route pattern with a value for each parameter."""
    parts = []
    for part in path.split("/"):
        parts.append("x" if part.startswith("<") else part)
    return "/".join(parts)


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevProcess]:
    data_dir = tmp_path_factory.mktemp("paths") / "data"
    add_dev_users(data_dir, {"victor": [VIEWER]})
    platform = DevProcess(data_dir, "--keep-warm").start()
    yield platform
    platform.stop()


def refused(status: int, body: bytes, method: str = "GET") -> bool:
    """A 400 with a JSON reason (a HEAD answer has no body to give it in): the path's, or the
    server's own for a request-target that is no path at all (`//x` reads as a network path)."""
    if status != 400 or method == "HEAD":
        return status == 400
    reason = json.loads(body)["error"]
    return "path" in reason or "URI" in reason


def test_the_reported_attack_is_refused(dev: DevProcess) -> None:
    viewer = dev.token("victor")
    port = int(dev.url.rsplit(":", 1)[1])
    for path in ("/dead-letters/..", "/dead-letters/../x", "/dead-letters/%2e%2e/"):
        status, body = raw_request(port, "GET", path, viewer)
        assert refused(status, body), (path, status, body)
    status, body = raw_request(port, "GET", "/..", viewer, host="dead-letters.localhost")  # host routing
    assert refused(status, body), (status, body)
    status, body = raw_request(port, "GET", "/dead-letters/", viewer)  # the canonical path: the role decides
    assert status == 403 and json.loads(body) == {"error": "the admin role is required"}


@pytest.mark.parametrize("channel", ["gateway", "direct"])
def test_every_twist_of_every_route_is_a_400_for_every_caller(dev: DevProcess, channel: str) -> None:
    tokens = {"none": None, "viewer": dev.token("victor"), "admin": dev.token("admin", [ADMIN])}
    targets: list[tuple[int, str, str]] = []  # (port, method, canonical path)
    gateway_port = int(dev.url.rsplit(":", 1)[1])
    for spec in all_specs():
        if channel == "direct":
            dev.request("GET", f"/{spec.name}/healthz", user=None)  # start it
            port = int(dev.functions()[spec.name]["url"].rsplit(":", 1)[1])
        for route in spec.all_routes:
            path = concrete(route.path)
            for method in route.methods:
                if channel == "gateway":
                    targets.append((gateway_port, method, f"/{spec.name}{path}"))
                else:
                    targets.append((port, method, path))
    if channel == "gateway":
        targets += [(gateway_port, m, concrete(r.path)) for r in GATEWAY_ROUTES for m in r.methods]
    checked = 0
    for port, method, path in targets:
        for twist, make in TWISTS.items():
            twisted = make(path)
            if twisted == path:
                continue
            for caller, token in tokens.items():
                status, body = raw_request(port, method, twisted, token)
                assert refused(status, body, method), (
                    channel,
                    twist,
                    caller,
                    method,
                    twisted,
                    status,
                    body[:200],
                )
                checked += 1
    assert checked > len(TWISTS) * 3 * 30  # every route, every twist, every caller


def test_a_presigned_key_is_decoded_once(dev: DevProcess) -> None:
    """A sibling: the presigned PUT decoded its key a second time, so `%2561` and `a` named one key."""
    status, presigned = dev.json("POST", "/upload/presign", {"filename": "x.jpg"}, user="admin")
    assert status == 200, presigned
    path, _, query = presigned["url"].partition("/upload/put/")[2].partition("?")
    twice = "".join(f"%25{ord(c):02X}" if c.isalnum() else c for c in path)  # each character encoded twice
    body, port = images.jpeg((8, 8)), int(dev.url.rsplit(":", 1)[1])
    conn = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = f"PUT /upload/put/{twice}?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
    conn.sendall(head.encode() + b"Connection: close\r\n\r\n" + body)
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    conn.close()
    assert data.split()[1] == b"403", data[:300]  # the literal `%61...` key is not the one signed
    assert dev.request("PUT", presigned["url"].split(dev.url, 1)[1], body=body, user=None).status == 200
