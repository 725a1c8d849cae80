"""JwksCache against a real JWKS server on loopback: caching, bounded refreshes, outages, rotation."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from shared.auth.jwks import AuthUnavailable, JwksCache, UnknownKey, parse_jwks
from tests.support.tokens import JwksServer, ec_key, public_jwk, rsa_key

RSA = rsa_key()
EC = ec_key()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server() -> Iterator[JwksServer]:
    s = JwksServer([public_jwk(RSA, "rsa-1"), public_jwk(EC, "ec-1")])
    yield s
    s.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def cache(url: str, clock: Clock, **options: float) -> JwksCache:
    return JwksCache(url, min_refresh_interval=30.0, fetch_timeout=2.0, clock=clock, **options)


def test_keys_are_fetched_once_and_then_served_from_the_cache(server: JwksServer, clock: Clock) -> None:
    jwks = cache(server.url, clock)
    assert jwks.fetches == 0  # nothing happens before the first use
    assert jwks.key_for("rsa-1").key_type == "RSA"
    assert jwks.key_for("ec-1").key_type == "EC"
    for _ in range(100):
        jwks.key_for("rsa-1")
    assert (jwks.fetches, server.requests) == (1, 1)


def test_a_flood_of_unknown_kids_costs_one_fetch_per_interval(server: JwksServer, clock: Clock) -> None:
    jwks = cache(server.url, clock)
    jwks.key_for("rsa-1")
    for _ in range(1000):  # within 30 s of the fetch: no refresh at all
        with pytest.raises(UnknownKey):
            jwks.key_for(uuid.uuid4().hex)
    assert jwks.fetches == 1
    clock.now += 30
    for _ in range(1000):  # one refresh for the first unknown kid, none for the rest
        with pytest.raises(UnknownKey):
            jwks.key_for(uuid.uuid4().hex)
    assert jwks.fetches == 2
    clock.now += 29.9
    for _ in range(100):
        with pytest.raises(UnknownKey):
            jwks.key_for(uuid.uuid4().hex)
    assert jwks.fetches == 2
    clock.now += 0.2
    for _ in range(100):
        with pytest.raises(UnknownKey):
            jwks.key_for(uuid.uuid4().hex)
    assert jwks.fetches == 3
    assert server.requests == 3
    assert jwks.key_for("rsa-1").key_id == "rsa-1"  # known keys are still served


def test_a_concurrent_flood_of_unknown_kids_is_bounded_too(server: JwksServer, clock: Clock) -> None:
    jwks = cache(server.url, clock)
    errors: list[Exception] = []

    def ask() -> None:
        for _ in range(50):
            try:
                jwks.key_for(uuid.uuid4().hex)
            except UnknownKey:
                pass
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert server.requests == jwks.fetches == 1  # the first fetch; its kids then wait the interval


def test_cached_keys_are_served_while_the_endpoint_is_down(server: JwksServer, clock: Clock) -> None:
    jwks = cache(server.url, clock)
    jwks.key_for("rsa-1")
    server.status = 503
    clock.now += 31
    with pytest.raises(UnknownKey):
        jwks.key_for("rotated")  # a refresh is tried and fails
    assert jwks.fetches == 2
    assert jwks.key_for("rsa-1").key_id == "rsa-1"
    server.stop()  # now connection refused
    clock.now += 400  # past max_age: the stale keys are still better than nothing
    assert jwks.key_for("ec-1").key_id == "ec-1"
    assert jwks.key_for("rsa-1").key_id == "rsa-1"
    assert jwks.fetches == 3  # one refresh attempt for the stale cache, not one per call


def test_garbage_from_the_endpoint_keeps_the_cache(server: JwksServer, clock: Clock) -> None:
    jwks = cache(server.url, clock)
    jwks.key_for("rsa-1")
    server.body = b"<html>maintenance</html>"
    clock.now += 31
    with pytest.raises(UnknownKey):
        jwks.key_for("other")
    server.body = b'{"not": "a jwks"}'
    clock.now += 31
    with pytest.raises(UnknownKey):
        jwks.key_for("other")
    assert jwks.key_for("rsa-1").key_id == "rsa-1"
    assert jwks.fetches == 3


def test_nothing_cached_and_unreachable_fails_closed(clock: Clock) -> None:
    down = JwksServer([public_jwk(RSA, "rsa-1")])
    down.stop()
    jwks = cache(down.url, clock)
    for _ in range(200):
        with pytest.raises(AuthUnavailable):
            jwks.key_for("rsa-1")
    assert jwks.fetches == 1  # failures are retried at most once per failure_retry_interval
    clock.now += 1.0
    with pytest.raises(AuthUnavailable):
        jwks.key_for("rsa-1")
    assert jwks.fetches == 2


def test_an_error_status_with_nothing_cached_fails_closed_and_recovers(
    server: JwksServer, clock: Clock
) -> None:
    server.status = 500
    jwks = cache(server.url, clock)
    with pytest.raises(AuthUnavailable):
        jwks.key_for("rsa-1")
    server.status = 200
    with pytest.raises(AuthUnavailable):  # not retried at once
        jwks.key_for("rsa-1")
    clock.now += 1.0
    assert jwks.key_for("rsa-1").key_id == "rsa-1"
    assert jwks.fetches == 2


def test_a_rotated_key_is_picked_up_after_the_interval(server: JwksServer, clock: Clock) -> None:
    jwks = cache(server.url, clock)
    jwks.key_for("rsa-1")
    clock.now += 35
    with pytest.raises(UnknownKey):
        jwks.key_for("probe")  # a refresh now: the next one waits 30 s
    server.keys.append(public_jwk(rsa_key(), "rsa-2"))
    clock.now += 10
    with pytest.raises(UnknownKey):
        jwks.key_for("rsa-2")  # published, but the interval has not passed
    clock.now += 21
    assert jwks.key_for("rsa-2").key_id == "rsa-2"
    assert jwks.fetches == 3


def test_a_removed_key_stops_being_trusted_after_max_age(server: JwksServer, clock: Clock) -> None:
    jwks = cache(server.url, clock, max_age=300.0)
    jwks.key_for("rsa-1")
    server.keys = [k for k in server.keys if k["kid"] != "rsa-1"]
    clock.now += 299
    assert jwks.key_for("rsa-1").key_id == "rsa-1"
    clock.now += 2
    with pytest.raises(UnknownKey):
        jwks.key_for("rsa-1")
    assert jwks.cached_kids == {"ec-1"}


def test_only_rsa_and_p256_signing_keys_with_a_kid_are_kept() -> None:
    good_rsa = public_jwk(RSA, "good-rsa")
    no_use = {k: v for k, v in public_jwk(RSA, "no-use").items() if k not in ("use", "alg")}
    document = {
        "keys": [
            good_rsa,
            public_jwk(EC, "good-ec"),
            no_use,
            public_jwk(RSA, "enc-key", use="enc", alg="RSA-OAEP"),
            public_jwk(RSA, "rs512", alg="RS512"),
            public_jwk(ec_key(ec.SECP384R1()), "p384"),
            {**public_jwk(RSA, "x"), "kid": None},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {**public_jwk(RSA, "has-private"), "d": "AQAB"},
            {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
            "not a key",
        ]
    }
    assert set(parse_jwks(document)) == {"good-rsa", "good-ec", "no-use"}
    with pytest.raises(ValueError):
        parse_jwks({"keys": "nope"})
