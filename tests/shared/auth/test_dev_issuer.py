"""The dev realm's files, its tokens (verified by the same TokenVerifier as Keycloak's) and secrets."""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path

import jwt
import pytest

from shared.auth.dev_issuer import (
    PUBLIC_CLIENT,
    SERVICE_CLIENT,
    DevRealm,
    DevRealmError,
    check_secret,
    ensure_dev_realm,
    hash_secret,
    mint_service_token,
    mint_token,
)
from shared.auth.jwks import JwksCache
from shared.auth.verify import TokenVerifier
from tests.support.tokens import JwksServer

ISSUER = "http://127.0.0.1:9/authz/realms/datafrost"


def passwords(realm: DevRealm) -> dict[str, str]:
    lines = (realm.directory / "credentials.txt").read_text().splitlines()
    return dict(line.split("\t") for line in lines if line and not line.startswith("#"))


def verifier_for(realm: DevRealm) -> tuple[TokenVerifier, JwksServer]:
    server = JwksServer(realm.jwks()["keys"])
    return TokenVerifier(realm.issuer, "datafrost", JwksCache(server.url), "datafrost"), server


def test_first_use_creates_private_files_with_hashed_passwords(tmp_path: Path) -> None:
    realm = ensure_dev_realm(tmp_path, ISSUER)
    for name in ("signing-key.pem", "users.json", "credentials.txt", "service-client.json"):
        assert stat.S_IMODE((tmp_path / "auth" / name).stat().st_mode) == 0o600, name
    secrets = passwords(realm)
    assert set(secrets) == {"demo", "admin"}
    stored = (tmp_path / "auth" / "users.json").read_text()
    for plaintext in [*secrets.values(), realm.service_client_secret]:
        assert plaintext not in stored
        assert plaintext not in repr(realm)
    assert {u: realm.users[u].roles for u in realm.users} == {"demo": ("editor",), "admin": ("admin",)}
    assert realm.clients[SERVICE_CLIENT].roles == ("service",)
    assert realm.clients[PUBLIC_CLIENT].public
    assert realm.service_client_id == SERVICE_CLIENT
    assert realm.authenticate_user("demo", secrets["demo"]) == realm.users["demo"]
    assert realm.authenticate_user("demo", secrets["admin"]) is None
    assert realm.authenticate_user("nobody", "x") is None
    assert realm.authenticate_client(SERVICE_CLIENT, realm.service_client_secret) is not None
    assert realm.authenticate_client(SERVICE_CLIENT, "wrong") is None
    assert realm.authenticate_client(SERVICE_CLIENT, None) is None


def test_the_realm_is_stable_across_loads(tmp_path: Path) -> None:
    first = ensure_dev_realm(tmp_path, ISSUER)
    again = ensure_dev_realm(tmp_path, ISSUER)
    assert first.kid == again.kid
    assert first.users["demo"].id == again.users["demo"].id
    assert first.service_client_secret == again.service_client_secret


def test_concurrent_first_use_creates_one_realm(tmp_path: Path) -> None:
    realms: list[DevRealm] = []
    threads = [threading.Thread(target=lambda: realms.append(ensure_dev_realm(tmp_path))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r.kid for r in realms}) == 1
    assert len({r.service_client_secret for r in realms}) == 1


def test_a_plaintext_password_added_by_hand_is_hashed_on_load(tmp_path: Path) -> None:
    ensure_dev_realm(tmp_path)
    path = tmp_path / "auth" / "users.json"
    config = json.loads(path.read_text())
    config["users"].append({"username": "carol", "roles": ["viewer"], "password": "carols-password"})
    path.write_text(json.dumps(config))
    realm = ensure_dev_realm(tmp_path)
    assert "carols-password" not in path.read_text()
    assert realm.authenticate_user("carol", "carols-password") is not None
    assert realm.users["carol"].id  # an id was given


def test_dev_tokens_look_like_keycloaks_and_verify(tmp_path: Path) -> None:
    realm = ensure_dev_realm(tmp_path, ISSUER)
    verifier, server = verifier_for(realm)
    try:
        token = mint_token(realm, "demo")
        header = jwt.get_unverified_header(token)
        assert header == {"alg": "RS256", "typ": "JWT", "kid": realm.kid}
        body = jwt.decode(token, options={"verify_signature": False})
        assert body["iss"] == ISSUER and body["aud"] == ["datafrost"] and body["azp"] == PUBLIC_CLIENT
        assert body["typ"] == "Bearer" and body["sub"] == realm.users["demo"].id
        assert body["resource_access"] == {"datafrost": {"roles": ["editor"]}}
        assert "default-roles-datafrost" in body["realm_access"]["roles"]
        assert body["exp"] - body["iat"] == 300 and body["nbf"] == body["iat"]
        identity = verifier.verify(token)
        assert (identity.owner, identity.can("editor"), identity.is_admin) == ("demo", True, False)
        viewer = verifier.verify(mint_token(realm, "admin", roles=["viewer"], ttl=60))
        assert viewer.owner == "admin" and not viewer.can("editor")
        service = verifier.verify(mint_service_token(realm, SERVICE_CLIENT))
        assert service.is_service and service.client == SERVICE_CLIENT
        assert service.owner == f"service-account-{SERVICE_CLIENT}"
    finally:
        server.stop()


def test_mint_refuses_unknown_users_roles_and_ttls(tmp_path: Path) -> None:
    realm = ensure_dev_realm(tmp_path)
    with pytest.raises(DevRealmError):
        mint_token(realm, "mallory")
    with pytest.raises(DevRealmError):
        mint_token(realm, "demo", roles=["superuser"])
    with pytest.raises(DevRealmError):
        mint_token(realm, "demo", ttl=0)
    with pytest.raises(DevRealmError):
        mint_token(realm, "demo", ttl=10**9)


def test_secret_hashes() -> None:
    stored = hash_secret("hunter2")
    assert stored.startswith("scrypt$") and "hunter2" not in stored
    assert check_secret("hunter2", stored)
    assert not check_secret("hunter3", stored)
    assert not check_secret("hunter2", None)
    assert not check_secret("hunter2", "plain")
    assert not check_secret("x", "scrypt$1048577$8$1$AAAA$AAAA")  # refuses absurd cost parameters
