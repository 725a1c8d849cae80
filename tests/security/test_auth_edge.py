"""The dev issuer at its edges: who decides it is on, who may mint a token without a password, and how
fast anyone may guess a password.

- `datafrost dev --host <an address of this machine>`: the platform decides "dev issuer on" once and
  hands that to every process, so the issuer answers there (it used to answer 404 everywhere);
- `POST /dev/token` mints only for requests addressed to this machine (Host), from this machine, that
  carry the data dir's dev token secret; `datafrost token` and the CLI read that secret;
- the token endpoint has Keycloak's brute-force detection: per user, per client and per client
  address, refusing during the lockout without revealing it, counted in a metric.

Each is tested through `datafrost dev` (a real DevProcess) and straight at the authz function.
"""

from __future__ import annotations

import json
import math
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import urllib3
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from localplatform.auth_wiring import prepare_auth
from shared.auth.brute_force import BruteForceProtector, Key, Kind, address_key
from shared.auth.dev_issuer import dev_token_secret_path, ensure_dev_realm, read_dev_token_secret
from shared.settings import BruteForcePolicy, from_env
from tests.support.functions import ServedFunction
from tests.support.platform import DATAFROST, DevProcess, add_dev_users, dev_token_headers

http = urllib3.PoolManager(retries=False)
TOKEN_PATH = "/realms/datafrost/protocol/openid-connect/token"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSON = {"Content-Type": "application/json"}
WRONG_USER = {"error": "invalid_grant", "error_description": "Invalid user credentials"}
WRONG_CLIENT = {
    "error": "invalid_client",
    "error_description": "Invalid client or Invalid client credentials",
}


def non_loopback_address() -> str | None:
    """An IPv4 address of this machine that is not loopback (the one its default route leaves by)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("198.51.100.1", 9))  # TEST-NET-2: picks a route, sends nothing
            address = str(probe.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def answer(response: urllib3.BaseHTTPResponse) -> tuple[int, Any]:
    return response.status, (json.loads(response.data) if response.data else None)


def password_grant(base: str, user: str, password: str, **headers: str) -> tuple[int, Any]:
    form = urlencode(
        {"grant_type": "password", "client_id": "datafrost", "username": user, "password": password}
    )
    return answer(http.request("POST", base + TOKEN_PATH, body=form, headers={**FORM, **headers}, timeout=30))


def failures_metric(dev: DevProcess) -> dict[str, float]:
    """datafrost_auth_login_failures_total of the authz process, by reason, as the gateway serves it."""
    response = dev.request("GET", "/metrics", user="admin")
    assert response.status == 200
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(response.data.decode()):
        for sample in family.samples:
            if sample.name == "datafrost_auth_login_failures_total" and sample.labels["process"] == "authz":
                found[sample.labels["reason"]] = sample.value
    return found


# -- item 5: one decision, handed to every process ----------------------------------------------------------
@pytest.fixture(scope="module")
def realm_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as directory:
        yield Path(directory)


hosts = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda ip: f"[{ip}]"),
    st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,20}){0,3}", fullmatch=True),
)


@settings(max_examples=60, deadline=None)
@given(host=hosts, port=st.integers(1, 65535))
def test_every_process_gets_the_platforms_dev_issuer_decision(realm_dir: Path, host: str, port: int) -> None:
    public_url = f"http://{host}:{port}"
    for platform_env, in_use in (
        ({}, True),  # no issuer configured: the dev issuer, wherever the gateway listens
        ({"DATAFROST_AUTH_ISSUER": "https://kc.example/realms/datafrost"}, False),  # a real Keycloak
        ({"DATAFROST_AUTH_ISSUER": "https://kc.example/realms/d", "DATAFROST_AUTH_DEV_ISSUER": "on"}, True),
    ):
        platform = from_env(platform_env)
        assert platform.auth_dev_issuer is in_use
        handed = prepare_auth(platform, public_url, "http://127.0.0.1:1", realm_dir).env
        function = from_env({**platform_env, **handed})  # what each function process reads
        assert function.auth_dev_issuer is in_use, (platform_env, handed)
        assert handed["DATAFROST_AUTH_DEV_ISSUER"] == ("on" if in_use else "off")


def test_a_process_left_to_guess_from_a_non_loopback_issuer_says_off() -> None:
    """The cause of the bug: the guess, from the issuer URL the platform hands out, says "not dev"."""
    assert (
        from_env({"DATAFROST_AUTH_ISSUER": "http://192.0.2.2:8080/authz/realms/datafrost"}).auth_dev_issuer
        is False
    )
    assert from_env({"DATAFROST_AUTH_ISSUER": "http://127.0.0.1:8080/authz/realms/datafrost"}).auth_dev_issuer


def dev_issuer_answers(dev: DevProcess, public: str) -> None:
    """The issuer works through the gateway at `public` and straight at authz: discovery, a password
    grant, a token the functions accept, a dev token and `datafrost token`."""
    discovery = answer(
        http.request("GET", public + "/authz/realms/datafrost/.well-known/openid-configuration")
    )
    assert discovery[0] == 200 and discovery[1]["issuer"] == f"{dev.url}/authz/realms/datafrost"
    status, body = password_grant(public + "/authz", "alice", "alice-secret-pw")
    assert status == 200, body
    listing = http.request(
        "GET", public + "/catalog/images", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert listing.status == 200, listing.data
    authz = dev.functions()["authz"]["url"]
    assert answer(http.request("GET", authz + "/realms/datafrost/.well-known/openid-configuration"))[0] == 200
    assert password_grant(authz, "alice", "alice-secret-pw")[0] == 200
    assert dev.request("GET", "/catalog/images", user="alice").status == 200  # a dev token (dev.token)
    printed = dev.cli("token", "--user", "alice")
    assert printed.returncode == 0, printed.stderr
    assert (
        http.request(
            "GET", public + "/catalog/images", headers={"Authorization": f"Bearer {printed.stdout.strip()}"}
        ).status
        == 200
    )


def test_dev_on_a_specific_non_loopback_address_serves_the_dev_issuer(tmp_path: Path) -> None:
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address (the wildcard test below still runs)")
    add_dev_users(tmp_path / "data", {"alice": ["editor"]})
    dev = DevProcess(tmp_path / "data", "--host", address, "--keep-warm").start()
    try:
        assert dev.url.startswith(f"http://{address}:")
        dev_issuer_answers(dev, dev.url)
    finally:
        dev.stop()


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_dev_on_ipv6_loopback_hands_out_bracketed_urls(tmp_path: Path) -> None:
    if not ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback")
    add_dev_users(tmp_path / "data", {"alice": ["editor"]})
    dev = DevProcess(tmp_path / "data", "--host", "::1", "--keep-warm").start()
    try:
        assert dev.url.startswith("http://[::1]:")
        discovery = dev.json("GET", "/authz/realms/datafrost/.well-known/openid-configuration", user=None)[1]
        assert discovery["token_endpoint"] == f"{dev.url}/authz{TOKEN_PATH}"  # was http://::1:PORT/...
        dev_issuer_answers(dev, dev.url)
    finally:
        dev.stop()


def test_dev_on_every_address_serves_the_dev_issuer_and_mints_for_loopback_only(tmp_path: Path) -> None:
    add_dev_users(tmp_path / "data", {"alice": ["editor"]})
    dev = DevProcess(tmp_path / "data", "--host", "0.0.0.0", "--keep-warm").start()
    try:
        dev_issuer_answers(dev, dev.url)
        address = non_loopback_address()
        if address is not None:  # the same gateway reached by another address: not a loopback caller
            outside = f"http://{address}:{dev.port}"
            assert password_grant(outside + "/authz", "alice", "alice-secret-pw")[0] == 200
            status, body = answer(
                http.request("POST", outside + "/authz/dev/token", body=json.dumps({"user": "alice"}),
                             headers={**JSON, **dev_token_headers(dev.data_dir)})
            )  # fmt: skip
            assert status == 403 and "addressed to this machine" in body["error"]  # Host: not --host
    finally:
        dev.stop()


# -- item 9: POST /dev/token -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevProcess]:
    data_dir = tmp_path_factory.mktemp("auth-edge") / "data"
    add_dev_users(data_dir, {"alice": ["editor"], "bob": ["editor"], "carol": ["viewer"]})
    platform = DevProcess(
        data_dir,
        "--keep-warm",
        env={
            "DATAFROST_AUTH_BRUTE_FORCE_FAILURE_FACTOR": "3",
            "DATAFROST_AUTH_BRUTE_FORCE_WAIT_INCREMENT_SECONDS": "60",  # locked out for the whole module
            "DATAFROST_AUTH_BRUTE_FORCE_MAX_WAIT_SECONDS": "60",
            "DATAFROST_AUTH_BRUTE_FORCE_QUICK_LOGIN_CHECK_MILLISECONDS": "0",
            "DATAFROST_AUTH_BRUTE_FORCE_ADDRESS_FAILURE_FACTOR": "5",
        },
    ).start()
    yield platform
    platform.stop()


def mint(base: str, headers: dict[str, str], user: str = "alice") -> tuple[int, Any]:
    body = json.dumps({"user": user})
    return answer(
        http.request("POST", base + "/dev/token", body=body, headers={**JSON, **headers}, timeout=30)
    )


def test_the_dev_token_secret_is_a_private_file_of_the_data_dir(dev: DevProcess) -> None:
    path = dev_token_secret_path(dev.data_dir)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = read_dev_token_secret(dev.data_dir)
    assert secret is not None and len(secret) >= 40
    assert ensure_dev_realm(dev.data_dir).dev_token_secret == secret  # made once, kept across loads
    assert secret not in repr(ensure_dev_realm(dev.data_dir))


@pytest.mark.parametrize("channel", ["gateway", "direct"])
def test_dev_tokens_need_the_secret_and_a_host_of_this_machine(dev: DevProcess, channel: str) -> None:
    base = dev.url + "/authz" if channel == "gateway" else dev.functions()["authz"]["url"]
    port = base.split(":")[2].split("/")[0]
    good = dev_token_headers(dev.data_dir)
    secret = good["X-Dev-Token-Secret"]
    status, body = mint(base, {})
    assert status == 403 and "dev token secret" in body["error"] and "X-Dev-Token-Secret" in body["error"]
    status, body = mint(base, {"X-Dev-Token-Secret": secret[:-2] + "xx"})
    assert status == 403 and body["error"].startswith("wrong dev token secret")
    for host in (
        f"rebound.example:{port}",
        "evil.example",
        f"192.0.2.99:{port}",
        f"localhost.evil.example:{port}",
    ):
        status, body = mint(base, {**good, "Host": host})
        assert status == 403, host
        assert body["error"].startswith(
            "dev tokens are minted only for requests addressed to this machine"
        ), host
    status, body = mint(base, {**good, "X-Forwarded-Host": "rebound.example"})
    if channel == "direct":  # a proxy's word for the client's Host counts as much as Host
        assert status == 403 and "addressed to this machine" in body["error"]
    else:  # the gateway sets X-Forwarded-Host to the Host it was sent: the client's own is replaced
        assert status == 200
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
        status, body = mint(base, {**good, "Host": host})
        assert status == 200, (host, body)
    status, body = mint(base, good)
    assert status == 200 and body["token_type"] == "Bearer"
    for refusal in (mint(base, {})[1], mint(base, {"X-Dev-Token-Secret": "guess"})[1]):
        assert secret not in json.dumps(refusal)


def test_host_routing_to_authz_on_localhost_mints(dev: DevProcess) -> None:
    headers = {**dev_token_headers(dev.data_dir), "Host": f"authz.localhost:{dev.port}"}
    assert mint(dev.url, headers)[0] == 200
    assert mint(dev.url, {**headers, "Host": f"authz.evil.example:{dev.port}"})[0] == 403


def test_datafrost_token_reads_the_secret_from_the_data_dir(dev: DevProcess, tmp_path: Path) -> None:
    printed = dev.cli("token", "--user", "bob", "--roles", "viewer")
    assert printed.returncode == 0, printed.stderr
    token = printed.stdout.strip()
    assert (
        dev.request("GET", "/catalog/images", user=None, headers={"Authorization": f"Bearer {token}"}).status
        == 200
    )
    empty = tmp_path / "empty"  # a data dir without the secret: as if run from another folder

    def elsewhere(*args: str) -> subprocess.CompletedProcess[str]:
        command = [*DATAFROST, *args, "--url", dev.url, "--data-dir", str(empty)]
        return subprocess.run(command, capture_output=True, text=True, env=dev.env, timeout=60)

    result = elsewhere("token")
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "dev token secret" in result.stderr and str(empty / "auth" / "dev-token-secret") in result.stderr
    assert "--data-dir" in result.stderr
    sent = elsewhere("send", "--type", "io.test.x", "--source", "tests")  # the CLI's automatic token, too
    assert sent.returncode == 1 and "dev token secret" in sent.stderr
    assert dev.cli("send", "--type", "io.test.x", "--source", "tests").returncode == 0


def test_the_secret_is_never_logged_and_refusals_are_counted(dev: DevProcess) -> None:
    before = failures_metric(dev).get("invalid_dev_token_secret", 0)
    assert mint(dev.url + "/authz", {"X-Dev-Token-Secret": "not-it"})[0] == 403
    assert failures_metric(dev)["invalid_dev_token_secret"] == before + 1
    secret = dev_token_headers(dev.data_dir)["X-Dev-Token-Secret"]
    assert secret not in dev.log_path.read_text()
    assert any(line.get("message", "").startswith("dev token refused") for line in dev.logs())


# -- a sibling: the cluster-local listener trusts its callers for being on loopback ----------------
def test_the_cluster_local_listener_refuses_a_foreign_host(dev: DevProcess) -> None:
    internal = f"http://127.0.0.1:{(dev.data_dir / 'internal-port').read_text().strip()}"
    port = internal.rsplit(":", 1)[1]
    event = json.dumps(
        {"specversion": "1.0", "id": "x-1", "source": "rebinding", "type": "io.datafrost.object.removed"}
    )
    structured = {"Content-Type": "application/cloudevents+json"}
    for method, path, body, headers in (
        ("GET", "/brokers/default/triggers", None, {}),
        ("POST", "/brokers/default/triggers", b"{}", JSON),
        ("POST", "/brokers/default", event, structured),
        ("GET", "/functions", None, {}),
    ):
        for host in (f"rebound.example:{port}", "catalog.rebound.example", f"192.0.2.99:{port}"):
            status, refusal = answer(
                http.request(method, internal + path, body=body, headers={**headers, "Host": host})
            )
            assert status == 403, (method, path, host)
            assert refusal == {
                "error": "the cluster-local listener answers only requests addressed to loopback (Host "
                "127.0.0.1, localhost or <function>.localhost)"
            }
    assert answer(http.request("GET", internal + "/brokers/default/triggers"))[0] == 200
    assert (
        answer(http.request("GET", internal + "/functions", headers={"Host": f"localhost:{port}"}))[0] == 200
    )
    by_host = answer(
        http.request("GET", internal + "/healthz", headers={"Host": f"catalog.localhost:{port}"})
    )
    assert by_host == (200, by_host[1]) and by_host[1].get("function") == "catalog"


# -- item 10: brute-force detection -------------------------------------------------------------------------
def test_wrong_passwords_lock_the_user_out_and_not_the_others(dev: DevProcess) -> None:
    base = dev.url + "/authz"
    before = failures_metric(dev)
    for guess in ("guess-1", "guess-2", "guess-3"):
        assert password_grant(base, "alice", guess) == (401, WRONG_USER)
    for _ in range(3):  # the right password, refused with the answer a wrong one gets, and not counted
        assert password_grant(base, "alice", "alice-secret-pw") == (401, WRONG_USER)
    assert password_grant(base, "bob", "bob-secret-pw")[0] == 200  # another user is unaffected
    after = failures_metric(dev)
    assert after["invalid_user_credentials"] == before.get("invalid_user_credentials", 0) + 3
    assert after["user_temporarily_disabled"] == before.get("user_temporarily_disabled", 0) + 3
    failures = [
        line for line in dev.logs() if line.get("message") == "login failure" and line.get("user") == "alice"
    ]
    assert [line["user_failures"] for line in failures] == [1, 2, 3]
    assert failures[-1]["user_locked"] == "60 s" and failures[-1]["address"] == "127.0.0.1"
    assert not any(word in dev.log_path.read_text() for word in ("guess-1", "alice-secret-pw"))


def test_a_lockout_ends_when_its_window_passes(tmp_path: Path) -> None:
    add_dev_users(tmp_path, {"alice": ["editor"]})
    authz = ServedFunction(
        "authz",
        {
            "DATAFROST_DATA_DIR": str(tmp_path),
            "DATAFROST_AUTH_DEV_ISSUER": "on",
            "DATAFROST_AUTH_BRUTE_FORCE_FAILURE_FACTOR": "2",
            "DATAFROST_AUTH_BRUTE_FORCE_WAIT_INCREMENT_SECONDS": "3",
            "DATAFROST_AUTH_BRUTE_FORCE_QUICK_LOGIN_CHECK_MILLISECONDS": "0",
        },
    )
    try:
        for guess in ("guess-1", "guess-2"):
            assert password_grant(authz.url, "alice", guess) == (401, WRONG_USER)
        assert password_grant(authz.url, "alice", "alice-secret-pw") == (401, WRONG_USER)
        deadline = time.monotonic() + 30  # a 3 s window; the refusals while waiting are not counted
        while password_grant(authz.url, "alice", "alice-secret-pw")[0] != 200:
            assert time.monotonic() < deadline, "alice stayed locked out after her window"
            time.sleep(0.25)
        assert password_grant(authz.url, "alice", "guess-3") == (401, WRONG_USER)  # success cleared the count
        assert password_grant(authz.url, "alice", "alice-secret-pw")[0] == 200
    finally:
        authz.stop()


def test_a_locked_user_is_locked_straight_at_authz_too(dev: DevProcess) -> None:
    authz = dev.functions()["authz"]["url"]
    for guess in ("g1", "g2", "g3"):
        assert password_grant(authz, "carol", guess, **{"X-Forwarded-For": "198.51.100.20"}) == (
            401,
            WRONG_USER,
        )
    assert password_grant(authz, "carol", "carol-secret-pw") == (401, WRONG_USER)
    assert password_grant(dev.url + "/authz", "carol", "carol-secret-pw") == (401, WRONG_USER)  # one count


def test_an_address_spraying_many_users_is_locked_out(dev: DevProcess) -> None:
    authz = dev.functions()["authz"]["url"]
    sprayer, other = {"X-Forwarded-For": "203.0.113.7"}, {"X-Forwarded-For": "203.0.113.8"}
    for user in ("nobody-1", "nobody-2", "nobody-3", "nobody-4", "bob"):
        assert password_grant(authz, user, "spray-pw", **sprayer) == (401, WRONG_USER)
    assert password_grant(authz, "bob", "bob-secret-pw", **sprayer) == (401, WRONG_USER)
    assert password_grant(authz, "bob", "bob-secret-pw", **other)[0] == 200  # bob is not locked: one failure
    assert failures_metric(dev)["address_temporarily_blocked"] >= 1


def test_wrong_client_secrets_lock_the_client_out(dev: DevProcess) -> None:
    authz = dev.functions()["authz"]["url"]
    service = json.loads((dev.data_dir / "auth" / "service-client.json").read_text())

    def client_grant(secret: str, address: str) -> tuple[int, Any]:
        form = urlencode(
            {"grant_type": "client_credentials", "client_id": service["client_id"], "client_secret": secret}
        )
        headers = {**FORM, "X-Forwarded-For": address}
        return answer(http.request("POST", authz + TOKEN_PATH, body=form, headers=headers, timeout=30))

    assert client_grant(service["client_secret"], "198.51.100.30")[0] == 200
    for n in range(3):
        assert client_grant(f"wrong-{n}", f"198.51.100.{31 + n}") == (401, WRONG_CLIENT)
    assert client_grant(service["client_secret"], "198.51.100.40") == (401, WRONG_CLIENT)
    assert failures_metric(dev)["client_temporarily_disabled"] >= 1
    assert failures_metric(dev)["invalid_client_credentials"] >= 3


# -- the rules, with a clock of our own -------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def protector(**policy: Any) -> tuple[BruteForceProtector, Clock]:
    clock = Clock()
    return BruteForceProtector(BruteForcePolicy(**policy), clock), clock


ALICE = Key(Kind.USER, "alice")


def fail_after_each_lockout(guard: BruteForceProtector, clock: Clock, key: Key, times: int) -> list[float]:
    """Fail `times` times, each after the previous lockout ran out (and 10 s apart at least)."""
    waits = []
    for _ in range(times):
        assert not guard.locked(key)
        wait = guard.failure(key).seconds
        waits.append(wait)
        clock.now += max(wait, 10.0)
    return waits


def test_the_multiple_strategy_grows_the_wait_at_each_multiple_up_to_the_max() -> None:
    guard, clock = protector(failure_factor=5, wait_increment_seconds=30, max_wait_seconds=75)
    waits = fail_after_each_lockout(guard, clock, ALICE, 15)
    assert waits == [0, 0, 0, 0, 30, 30, 30, 30, 30, 60, 60, 60, 60, 60, 75]  # Keycloak's table, capped


def test_the_linear_strategy_grows_the_wait_at_every_failure() -> None:
    guard, clock = protector(failure_factor=5, wait_increment_seconds=30, strategy="linear")
    assert fail_after_each_lockout(guard, clock, ALICE, 8) == [0, 0, 0, 0, 30, 60, 90, 120]


def test_a_locked_key_is_refused_until_its_wait_ends_and_success_resets_it() -> None:
    guard, clock = protector(failure_factor=2, wait_increment_seconds=60)
    guard.failure(ALICE)
    clock.now += 5
    assert guard.failure(ALICE).seconds == 60
    clock.now += 59.9
    assert guard.locked(ALICE) and not guard.locked(Key(Kind.USER, "bob"))
    clock.now += 0.2
    assert not guard.locked(ALICE)
    guard.success(ALICE)
    assert guard.failure(ALICE).failures == 1  # counting starts again


def test_quick_failures_wait_the_minimum_and_the_count_resets_after_the_reset_time() -> None:
    guard, clock = protector(quick_login_check_milliseconds=1000, minimum_quick_login_wait_seconds=60)
    assert guard.failure(ALICE).seconds == 0
    clock.now += 0.5
    assert guard.failure(ALICE).seconds == 60  # a script, not a person
    clock.now += 12 * 3600 + 1
    assert guard.failure(ALICE).failures == 1  # after the failure reset time, a new count


def test_permanent_lockout_lasts() -> None:
    guard, clock = protector(failure_factor=3, permanent_lockout=True, quick_login_check_milliseconds=0)
    for _ in range(2):
        assert guard.failure(ALICE).seconds == 0
    assert guard.failure(ALICE).permanent
    clock.now += 10 * 365 * 24 * 3600
    assert guard.locked(ALICE)


def test_addresses_use_their_own_factor_and_keep_counting_after_a_success() -> None:
    guard, _ = protector(
        address_failure_factor=3, wait_increment_seconds=60, quick_login_check_milliseconds=5000
    )
    address = address_key("203.0.113.9")
    assert [guard.failure(address).seconds for _ in range(2)] == [0, 0]  # no quick-login wait for addresses
    guard.success(address)
    assert guard.failure(address).seconds == 60
    assert address_key("2001:db8::1") == address_key("2001:db8::ffff")  # one /64
    assert address_key("::ffff:203.0.113.9") == address


def test_disabled_detection_never_locks() -> None:
    guard, _ = protector(enabled=False, failure_factor=1)
    assert guard.failure(ALICE).seconds == 0 and not guard.locked(ALICE)


@settings(max_examples=200, deadline=None)
@given(
    gaps=st.lists(st.floats(0, 4000, allow_nan=False), min_size=1, max_size=60),
    factor=st.integers(1, 10),
    increment=st.integers(0, 300),
    max_wait=st.integers(0, 900),
    strategy=st.sampled_from(["multiple", "linear"]),
)
def test_no_lockout_exceeds_the_max_wait_nor_ends_early(
    gaps: list[float], factor: int, increment: int, max_wait: int, strategy: str
) -> None:
    guard, clock = protector(
        failure_factor=factor, wait_increment_seconds=increment, max_wait_seconds=max_wait, strategy=strategy
    )
    for gap in gaps:
        clock.now += gap
        if guard.locked(ALICE):
            continue  # refused unchecked: not counted
        lockout = guard.failure(ALICE)
        assert 0 <= lockout.seconds <= max_wait and not math.isinf(lockout.seconds)
        if lockout.seconds:
            clock.now += lockout.seconds * 0.999
            assert guard.locked(ALICE)


def test_settings_read_keycloaks_defaults_and_refuse_nonsense() -> None:
    assert from_env({}).auth_brute_force == BruteForcePolicy()
    policy = BruteForcePolicy()
    assert (policy.failure_factor, policy.wait_increment_seconds, policy.max_wait_seconds) == (30, 60, 900)
    assert (policy.failure_reset_seconds, policy.quick_login_check_milliseconds) == (43200, 1000)
    assert (policy.minimum_quick_login_wait_seconds, policy.permanent_lockout, policy.strategy) == (
        60,
        False,
        "multiple",
    )
    with pytest.raises(ValueError, match="DATAFROST_AUTH_BRUTE_FORCE_FAILURE_FACTOR must be at least 1"):
        from_env({"DATAFROST_AUTH_BRUTE_FORCE_FAILURE_FACTOR": "0"})
    with pytest.raises(ValueError, match="DATAFROST_AUTH_BRUTE_FORCE_STRATEGY must be multiple or linear"):
        from_env({"DATAFROST_AUTH_BRUTE_FORCE_STRATEGY": "exponential"})
