"""TokenVerifier with real keys and a real JWKS server: honest tokens pass, every forgery is refused."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from shared.auth.identity import Identity
from shared.auth.jwks import JwksCache
from shared.auth.verify import InvalidToken, TokenVerifier, bearer_token, realm_of, verifier_from_settings
from shared.settings import from_env
from tests.support.tokens import (
    AUDIENCE,
    CLIENT,
    ISSUER,
    JwksServer,
    claims,
    ec_key,
    hs256_with,
    public_jwk,
    public_pem,
    raw_token,
    rsa_key,
    sign,
)

RSA = rsa_key()
EC = ec_key()
ATTACKER = rsa_key()


@pytest.fixture(scope="module")
def server() -> Iterator[JwksServer]:
    s = JwksServer([public_jwk(RSA, "k1"), public_jwk(EC, "e1")])
    yield s
    s.stop()


@pytest.fixture
def verifier(server: JwksServer) -> TokenVerifier:
    return TokenVerifier(ISSUER, AUDIENCE, JwksCache(server.url), CLIENT, leeway=30)


def refused(verifier: TokenVerifier, token: str) -> str:
    """The reason a token is refused; it must never contain the token or any part of it."""
    with pytest.raises(InvalidToken) as caught:
        verifier.verify(token)
    reason = caught.value.reason
    assert reason == str(caught.value)
    for part in [token, *token.split(".")]:
        assert len(part) < 8 or part not in reason
    return reason


# -- honest tokens ----------------------------------------------------------------------------------
def test_a_keycloak_rs256_token_gives_its_identity(verifier: TokenVerifier) -> None:
    identity = verifier.verify(sign(claims(), RSA, kid="k1"))
    assert identity == Identity(
        subject="f1e2d3c4-0000-4000-8000-000000000001",
        username="alice",
        roles=frozenset({"default-roles-datafrost", "offline_access", "editor"}),
        client=CLIENT,
    )
    assert identity.owner == "alice"
    assert identity.can("viewer") and identity.can("editor") and not identity.can("admin")
    assert not identity.is_admin and not identity.is_service
    assert not identity.has_role("viewer")  # held through the hierarchy only


def test_an_es256_token_verifies(verifier: TokenVerifier) -> None:
    token = sign(claims(realm_access={"roles": ["admin"]}), EC, alg="ES256", kid="e1")
    identity = verifier.verify(token)
    assert identity.is_admin and identity.can("editor") and identity.can("service")


def test_roles_of_other_clients_do_not_count(verifier: TokenVerifier) -> None:
    token = sign(claims(resource_access={"other-app": {"roles": ["admin"]}}), RSA)
    assert verifier.verify(token).roles == {"default-roles-datafrost", "offline_access"}


def test_owner_falls_back_to_sub(verifier: TokenVerifier) -> None:
    identity = verifier.verify(sign(claims(preferred_username=None), RSA))
    assert identity.username is None and identity.owner == identity.subject


# -- audience -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("aud", "azp"),
    [
        ("datafrost", "web"),  # aud names us
        (["account", "datafrost"], "web"),  # a list containing us
        ("account", "datafrost"),  # Keycloak's default: aud=account, issued to our client
        (None, "datafrost"),  # no aud at all, issued to our client
    ],
)
def test_audience_is_aud_or_azp(verifier: TokenVerifier, aud: Any, azp: str) -> None:
    verifier.verify(sign(claims(aud=aud, azp=azp), RSA))


@pytest.mark.parametrize(("aud", "azp"), [("account", "web"), (["account", "other"], None), (None, None)])
def test_a_wrong_audience_is_refused(verifier: TokenVerifier, aud: Any, azp: Any) -> None:
    assert refused(verifier, sign(claims(aud=aud, azp=azp), RSA)) == "wrong audience"


# -- forgeries ----------------------------------------------------------------------------------------
def test_alg_none_is_refused(verifier: TokenVerifier) -> None:
    for alg in ("none", "None", "NONE"):
        token = raw_token({"alg": alg, "kid": "k1", "typ": "JWT"}, claims())
        assert refused(verifier, token).startswith("token algorithm not allowed")
        assert refused(verifier, token + "c2ln").startswith("token algorithm not allowed")


def test_hs256_signed_with_the_public_key_as_secret_is_refused(verifier: TokenVerifier) -> None:
    header = {"alg": "HS256", "kid": "k1", "typ": "JWT"}
    der = RSA.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for secret in (public_pem(RSA), der, json.dumps(public_jwk(RSA, "k1")).encode()):
        assert refused(verifier, hs256_with(secret, header, claims())).startswith(
            "token algorithm not allowed"
        )


def test_other_algorithms_are_refused_even_with_the_right_key(verifier: TokenVerifier) -> None:
    for alg in ("RS384", "RS512", "PS256"):
        assert refused(verifier, sign(claims(), RSA, alg=alg)).startswith("token algorithm not allowed")


def test_an_algorithm_that_does_not_match_the_key_type_is_refused(verifier: TokenVerifier) -> None:
    es_on_rsa_kid = sign(claims(), EC, alg="ES256", kid="k1")
    rs_on_ec_kid = sign(claims(), RSA, alg="RS256", kid="e1")
    assert refused(verifier, es_on_rsa_kid) == "token algorithm does not match its signing key"
    assert refused(verifier, rs_on_ec_kid) == "token algorithm does not match its signing key"


def test_a_wrong_issuer_is_refused(verifier: TokenVerifier) -> None:
    for iss in ("https://evil.test/realms/datafrost", ISSUER + "/", "https://keycloak.test/realms/other"):
        assert refused(verifier, sign(claims(iss=iss), RSA)) == "wrong issuer"


def test_an_expired_token_is_refused_beyond_the_leeway(verifier: TokenVerifier) -> None:
    now = int(time.time())
    verifier.verify(sign(claims(exp=now - 20, iat=now - 320), RSA))  # within 30 s of leeway
    assert refused(verifier, sign(claims(exp=now - 40, iat=now - 340), RSA)) == "token expired"


def test_a_not_yet_valid_token_is_refused_beyond_the_leeway(verifier: TokenVerifier) -> None:
    now = int(time.time())
    verifier.verify(sign(claims(nbf=now + 20, iat=now), RSA))
    verifier.verify(sign(claims(iat=now + 20), RSA))  # a clock slightly ahead
    assert refused(verifier, sign(claims(nbf=now + 40), RSA)) == "token not yet valid"
    assert refused(verifier, sign(claims(iat=now + 40), RSA)) == "token not yet valid"


def test_the_leeway_is_capped_at_30_seconds(server: JwksServer) -> None:
    lax = TokenVerifier(ISSUER, AUDIENCE, JwksCache(server.url), CLIENT, leeway=3600)
    assert lax.leeway == 30
    now = int(time.time())
    assert refused(lax, sign(claims(exp=now - 40, iat=now - 340), RSA)) == "token expired"
    config = from_env({"DATAFROST_AUTH_LEEWAY_SECONDS": "600"})
    assert config.auth_leeway_seconds == 30
    assert verifier_from_settings(config).leeway == 30


def test_an_unknown_kid_is_refused(verifier: TokenVerifier) -> None:
    assert refused(verifier, sign(claims(), RSA, kid="not-published")) == "unknown signing key"


def test_another_key_with_the_right_kid_is_refused(verifier: TokenVerifier) -> None:
    assert refused(verifier, sign(claims(), ATTACKER, kid="k1")) == "bad signature"


def test_keys_named_in_the_token_header_are_ignored(verifier: TokenVerifier) -> None:
    embedded = {
        "jwk": public_jwk(ATTACKER, "k1"),
        "jku": "https://evil.test/jwks",
        "x5u": "https://evil.test/",
    }
    assert refused(verifier, sign(claims(), ATTACKER, kid="k1", headers=embedded)) == "bad signature"
    assert refused(verifier, sign(claims(), ATTACKER, kid="evil", headers=embedded)) == "unknown signing key"


def test_a_tampered_payload_is_refused(verifier: TokenVerifier) -> None:
    head, _, signature = sign(claims(), RSA).split(".")
    admin = raw_token({"alg": "RS256", "kid": "k1"}, claims(realm_access={"roles": ["admin"]})).split(".")[1]
    assert refused(verifier, f"{head}.{admin}.{signature}") == "bad signature"


def test_a_missing_kid_is_refused(verifier: TokenVerifier) -> None:
    assert refused(verifier, sign(claims(), RSA, kid=None)) == "token has no kid"
    assert refused(verifier, sign(claims(), RSA, kid="")) == "token has no kid"


@pytest.mark.parametrize("claim", ["exp", "iss", "sub"])
def test_a_missing_required_claim_is_refused(verifier: TokenVerifier, claim: str) -> None:
    assert refused(verifier, sign(claims(**{claim: None}), RSA)) == f"missing claim {claim}"


def test_an_id_or_refresh_token_is_not_an_access_token(verifier: TokenVerifier) -> None:
    for typ in ("ID", "Refresh", "Offline"):
        assert refused(verifier, sign(claims(typ=typ), RSA)) == "not an access token"


def test_malformed_tokens_are_refused(verifier: TokenVerifier) -> None:
    for junk in ("abc", "a.b", "a.b.c", "....", "eyJhbGciOiJSUzI1NiJ9.e30", "x" * 20000, ""):
        refused(verifier, junk)
    assert refused(verifier, sign(claims(exp="tomorrow"), RSA)) == "malformed token"
    assert refused(verifier, sign(claims(sub=""), RSA)) in ("missing claim sub", "malformed sub claim")


def test_unknown_critical_headers_are_refused(verifier: TokenVerifier) -> None:
    refused(verifier, sign(claims(), RSA, headers={"crit": ["exp-ext"], "exp-ext": 1}))


# -- where tokens come from -----------------------------------------------------------------------------
def test_only_the_authorization_bearer_header_carries_a_token() -> None:
    assert bearer_token({"Authorization": "Bearer abc.def.ghi"}) == "abc.def.ghi"
    assert bearer_token({"authorization": "bearer  abc.def.ghi "}) == "abc.def.ghi"
    assert bearer_token({}) is None
    assert bearer_token({"Authorization": "Basic dXNlcjpwYXNz"}) is None
    assert bearer_token({"Authorization": "Bearer"}) is None
    assert bearer_token({"Authorization": "Bearer a b"}) is None
    # nothing else is a token source: query parameters and other headers are not looked at
    assert bearer_token({"X-Access-Token": "abc.def.ghi", "Cookie": "access_token=abc"}) is None


def test_settings_build_a_keycloak_verifier() -> None:
    config = from_env(
        {
            "DATAFROST_AUTH_ISSUER": "https://kc.example/realms/photos/",
            "DATAFROST_AUTH_AUDIENCE": "photos-api",
            "DATAFROST_AUTH_CLIENT": "photos",
        }
    )
    verifier = verifier_from_settings(config)
    assert verifier.issuer == "https://kc.example/realms/photos"
    assert verifier.jwks.url == "https://kc.example/realms/photos/protocol/openid-connect/certs"
    assert (verifier.audience, verifier.client) == ("photos-api", "photos")
    assert verifier.jwks.fetches == 0  # nothing fetched until a token is checked
    assert realm_of(verifier.issuer) == "photos"
    assert not config.auth_dev_issuer and config.auth_enabled
    local = from_env({})
    assert local.auth_dev_issuer and local.auth_issuer is None
    assert verifier_from_settings(local).issuer == "http://127.0.0.1:8080/authz/realms/datafrost"
    assert not from_env({"DATAFROST_AUTH": "off"}).auth_enabled
    gateway = from_env({"DATAFROST_AUTH_ISSUER": "http://127.0.0.1:8080/authz/realms/datafrost"})
    assert gateway.auth_dev_issuer
    local_keycloak = from_env({"DATAFROST_AUTH_ISSUER": "http://localhost:8081/realms/datafrost"})
    assert not local_keycloak.auth_dev_issuer  # a real Keycloak, even on this machine
    forced = {
        "DATAFROST_AUTH_ISSUER": "http://localhost:8081/realms/datafrost",
        "DATAFROST_AUTH_DEV_ISSUER": "on",
    }
    assert from_env(forced).auth_dev_issuer
    with pytest.raises(ValueError):
        from_env({"DATAFROST_AUTH": "maybe"})
    secret = from_env({"DATAFROST_AUTH_SERVICE_CLIENT_SECRET": "s3cret-value"})
    assert secret.auth_service_client_secret == "s3cret-value"
    assert "s3cret-value" not in repr(secret)
