"""Every route of every registered function, as its spec declares it, called by every kind of caller:
without a token, with each role, and with another owner's token; through the gateway and straight
against the function's own port (what anything in a cluster can do). Each answer must be what the
route's role says: 401 without a token, 403 without the role, 404 for another owner's image, and the
handler's own answer otherwise. A route added to a spec without a sample here fails the test.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import urllib3

from eventing.cloudevent import new_event
from eventing.http_codec import to_binary
from functions.registry import GATEWAY_ROUTES, all_specs, on_gateway
from functions.spec import PUBLIC, Route
from shared.auth.identity import ADMIN, EDITOR, SERVICE, VIEWER, Identity
from tests.support import images
from tests.support.platform import DevProcess, add_dev_users, dev_token_headers, storage_events_headers

http = urllib3.PoolManager(retries=False)


@dataclass(frozen=True)
class Caller:
    name: str
    user: str | None  # None: no token at all
    roles: tuple[str, ...] = ()

    def can(self, role: str) -> bool:
        return role == PUBLIC or Identity("s", self.user, frozenset(self.roles), None).can(role)


ANONYMOUS = Caller("anonymous", None)
CALLERS = (
    ANONYMOUS,
    Caller("viewer", "alice", (VIEWER,)),
    Caller("editor", "alice", (EDITOR,)),
    Caller("other-owner", "bob", (EDITOR,)),  # holds the roles, but not alice's images
    Caller("service", "admin", (SERVICE,)),
    Caller("admin", "admin", (ADMIN,)),
)


@dataclass
class Request:
    """What a sample sends, and what its handler answers a caller allowed by the role."""

    path: str
    body: bytes | None = None
    headers: dict[str, str] | None = None
    expect: Callable[[Caller], int] | int | None = None  # None: any handler answer (not 401/403, < 500)


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevProcess]:
    data_dir = tmp_path_factory.mktemp("routes") / "data"
    add_dev_users(data_dir, {"alice": [EDITOR], "bob": [EDITOR]})
    platform = DevProcess(data_dir, "--keep-warm").start()
    yield platform
    platform.stop()


def ready_image(dev: DevProcess, user: str) -> str:
    return dev.upload_ready(user, images.jpeg((64, 48)))


def owner_only(allowed_status: int) -> Callable[[Caller], int]:
    """alice's image: hers and the admin's to see; anyone else gets the 404 a missing image gets."""
    return lambda caller: allowed_status if caller.user in ("alice", "admin") else 404


def event_body() -> tuple[bytes, dict[str, str]]:
    headers, body = to_binary(new_event("io.test.route-table", "tests/route-table", {"n": 1}))
    return body, headers


def samples(dev: DevProcess) -> dict[tuple[str, str, str], Request]:
    """(function, method, route path) -> the request each caller makes; fresh images for each call."""
    image = ready_image(dev, "alice")
    doomed = ready_image(dev, "alice")  # deleted by the first allowed owner
    event, event_headers = event_body()
    presigned = dev.json("POST", "/upload/presign", {"filename": "put.jpg"}, user="alice")[1]
    put_path = presigned["url"].split("/upload", 1)[1]
    deleted: list[str] = []

    def delete_once(caller: Caller) -> int:
        """The owner (or an admin) deletes it once; then it is gone for everyone, as for another owner."""
        if caller.user in ("alice", "admin") and not deleted:
            deleted.append(caller.name)
            return 204
        return 404

    put: list[str] = []

    def put_once(caller: Caller) -> int:
        """A presigned URL takes one PUT, whoever sends it; every later one is refused."""
        put.append(caller.name)
        return 200 if len(put) == 1 else 403

    dev_token = json.dumps({"user": "demo"}).encode()
    json_headers = {"Content-Type": "application/json"}
    table: dict[tuple[str, str, str], Request] = {
        ("authz", "*", "/check"): Request("/check", expect=404),  # the check of "/": no route there
        ("authz", "*", "/check/<path:original>"): Request("/check/healthz"),
        ("authz", "GET", "/realms/<realm>/.well-known/openid-configuration"): Request(
            "/realms/datafrost/.well-known/openid-configuration", expect=200
        ),
        ("authz", "GET", "/realms/<realm>/protocol/openid-connect/certs"): Request(
            "/realms/datafrost/protocol/openid-connect/certs", expect=200
        ),
        ("authz", "POST", "/realms/<realm>/protocol/openid-connect/token"): Request(
            "/realms/datafrost/protocol/openid-connect/token", b"", expect=400
        ),
        ("authz", "POST", "/dev/token"): Request(
            "/dev/token", dev_token, {**json_headers, **dev_token_headers(dev.data_dir)}, expect=200
        ),
        ("catalog", "GET", "/images"): Request("/images", expect=200),
        ("catalog", "GET", "/images/<image_id>"): Request(f"/images/{image}", expect=owner_only(200)),
        ("catalog", "DELETE", "/images/<image_id>"): Request(f"/images/{doomed}", expect=delete_once),
        ("catalog", "GET", "/images/<image_id>/variants/<name>"): Request(
            f"/images/{image}/variants/thumb", expect=owner_only(200)
        ),
        ("catalog", "POST", "/reconcile"): Request("/reconcile", expect=200),  # one pass, its summary
        ("catalog", "GET", "/reconcile"): Request("/reconcile", expect=200),
        ("dead-letters", "GET", "/"): Request("/", expect=200),
        ("dead-letters", "GET", "/<letter_id>"): Request("/no-such-letter", expect=404),
        ("dead-letters", "DELETE", "/<letter_id>"): Request("/no-such-letter", expect=404),
        ("dead-letters", "POST", "/<letter_id>/replay"): Request("/no-such-letter/replay", expect=404),
        ("event-display", "GET", "/events"): Request("/events", expect=200),
        # MinIO's webhook token, never a JWT: a caller whose JWT replaces it is refused by the function
        ("storage-events", "POST", "/"): Request(
            "/",
            b'{"Records": []}',
            storage_events_headers(dev.data_dir),
            expect=lambda caller: 200 if caller.user is None else 401,
        ),
        ("storage-events", "HEAD", "/"): Request("/", expect=200),
        ("storage-events", "POST", "/rabbitmq"): Request("/rabbitmq", b"not an event", expect=400),
        ("upload", "POST", "/"): Request("/", b"", expect=400),  # allowed, then refused: empty
        ("upload", "POST", "/presign"): Request("/presign", b'{"expires_in": 0}', json_headers, expect=400),
        ("upload", "PUT", "/put/<path:key>"): Request(put_path, images.jpeg((8, 8)), expect=put_once),
    }
    for name in ("healthz", "readyz"):
        table[("*", "GET", f"/{name}")] = Request(f"/{name}", expect=200)
    table[("*", "GET", "/metrics")] = Request("/metrics", expect=200)
    table[("*", "POST", "/")] = Request("/", event, event_headers)  # the event endpoint: handled somehow
    return table


def sample_for(
    table: dict[tuple[str, str, str], Request], function: str, method: str, route: Route
) -> Request:
    for key in ((function, method, route.path), (function, "*", route.path), ("*", method, route.path)):
        if key in table:
            return table[key]
    raise AssertionError(f"no sample for {method} {route.path} of {function}: add one to this test")


def call(dev: DevProcess, method: str, url: str, caller: Caller, sample: Request) -> urllib3.BaseHTTPResponse:
    headers = dict(sample.headers or {})
    if caller.user is not None:
        headers["Authorization"] = f"Bearer {dev.token(caller.user, list(caller.roles))}"
    return http.request(method, url, body=sample.body, headers=headers, timeout=30)


def check(answer: urllib3.BaseHTTPResponse, role: str, caller: Caller, sample: Request, where: str) -> None:
    if role != PUBLIC and caller.user is None:
        assert answer.status == 401, where
        assert "authentication required" in json.loads(answer.data)["error"], where
        return
    if not caller.can(role):
        assert answer.status == 403, where
        assert json.loads(answer.data) == {"error": f"the {role} role is required"}, where
        return
    expected = sample.expect(caller) if callable(sample.expect) else sample.expect
    if expected is None:
        assert answer.status not in (401, 403) and answer.status < 500, (where, answer.data[:200])
    else:
        assert answer.status == expected, (where, answer.data[:200])


def function_base(dev: DevProcess, name: str) -> str:
    """The function's own address (its process is started by a request through the gateway first)."""
    dev.request("GET", f"/{name}/healthz", user=None)
    url: str = dev.functions()[name]["url"]
    assert url, f"{name} is not running"
    return url


@pytest.mark.parametrize("channel", ["gateway", "direct"])
def test_every_route_answers_every_caller_as_its_spec_says(dev: DevProcess, channel: str) -> None:
    table = samples(dev)
    checked = 0
    for spec in all_specs():
        base = dev.url + f"/{spec.name}" if channel == "gateway" else function_base(dev, spec.name)
        for route in spec.all_routes:
            for method in route.methods:
                sample = sample_for(table, spec.name, method, route)
                for caller in CALLERS:
                    answer = call(dev, method, base + sample.path, caller, sample)
                    where = f"{channel}: {caller.name} {method} {on_gateway(spec.name, route.path)}"
                    check(answer, route.role, caller, sample, where)
                    checked += 1
    assert checked >= len(CALLERS) * 30  # every function's routes, not a few


def test_the_gateways_own_routes_answer_as_declared(dev: DevProcess) -> None:
    body, headers = event_body()
    requests = {
        ("GET", "/healthz"): Request("/healthz", expect=200),
        ("GET", "/metrics"): Request("/metrics", expect=200),
        ("GET", "/functions"): Request("/functions", expect=200),
        ("POST", "/brokers/default"): Request("/brokers/default", body, headers, expect=202),
        ("GET", "/brokers/default/triggers"): Request("/brokers/default/triggers", expect=200),
        ("POST", "/brokers/default/triggers"): Request("/brokers/default/triggers", b"{}", expect=400),
        ("GET", "/brokers/default/triggers/<name>"): Request("/brokers/default/triggers/nothing", expect=404),
        ("DELETE", "/brokers/default/triggers/<name>"): Request(
            "/brokers/default/triggers/nothing", expect=404
        ),
    }
    for route in GATEWAY_ROUTES:
        for method in route.methods:
            sample = requests[(method, route.path)]
            for caller in CALLERS:
                answer = call(dev, method, dev.url + sample.path, caller, sample)
                check(answer, route.role, caller, sample, f"gateway: {caller.name} {method} {route.path}")


def test_another_owner_never_learns_an_image_exists(dev: DevProcess) -> None:
    """The owner checks hold on the function's own port too (nothing trusts the gateway alone)."""
    image = ready_image(dev, "alice")
    for base in (dev.url + "/catalog", function_base(dev, "catalog")):
        sample = Request(f"/images/{image}")
        mine = call(dev, "GET", base + sample.path, Caller("owner", "alice", (VIEWER,)), sample)
        theirs = call(dev, "GET", base + sample.path, Caller("bob", "bob", (VIEWER,)), sample)
        assert mine.status == 200 and json.loads(mine.data)["id"] == image
        assert theirs.status == 404 and json.loads(theirs.data) == {"error": f"no image {image}"}
