"""authz served for real (`python -m localplatform.serve authz PORT`): the dev issuer, and the ext-authz
check called the way Kourier calls it (only Host, Authorization and Content-Length; path under /check).

The last test reads everything the process logged and every error body it answered, and finds no
token, password, client secret or Authorization header value in any of it.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
import urllib3
from cryptography.hazmat.primitives import serialization

from localplatform.processes import free_port
from shared.auth.dev_issuer import (
    SERVICE_CLIENT,
    DevRealm,
    ensure_dev_realm,
    mint_token,
    read_dev_token_secret,
)
from shared.auth.jwks import JwksCache
from shared.auth.verify import TokenVerifier
from tests.support.tokens import claims, hs256_with, raw_token, rsa_key, sign

pool = urllib3.PoolManager(retries=False)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Authz:
    """One authz process; remembers every secret it was sent and every error body it answered."""

    data_dir: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    secrets: set[str] = field(default_factory=set)
    error_bodies: list[bytes] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return f"{self.url}/realms/datafrost"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "authz.stderr"

    def start(self) -> Authz:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DATAFROST_")}
        env.update(DATAFROST_DATA_DIR=str(self.data_dir), DATAFROST_LOG_LEVEL="DEBUG", **self.env)
        if (
            "DATAFROST_AUTH_ISSUER" not in env
        ):  # its own realm URL (not under a gateway: say it is the dev one)
            env.update(DATAFROST_AUTH_ISSUER=self.issuer, DATAFROST_AUTH_DEV_ISSUER="on")
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "localplatform.serve", "authz", str(self.port)],
                env=env,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, self.log_path.read_text()
            try:
                if pool.request("GET", self.url + "/healthz", timeout=1).status == 200:
                    return self
            except urllib3.exceptions.HTTPError:
                pass
            assert time.monotonic() < deadline, "authz did not become ready"
            time.sleep(0.05)

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(10)

    def _record(self, answer: Answer) -> Answer:
        if answer.status >= 400:
            self.error_bodies.append(answer.body)
            self.error_bodies.append(json.dumps(answer.headers).encode())
        return answer

    def check(
        self,
        method: str,
        path: str,
        token: str | None = None,
        body: bytes = b"",
        host: str = "127.0.0.1:8080",
        authorization: str | None = None,
    ) -> Answer:
        """What Kourier sends: the original method, /check + path, Host, Authorization, Content-Length."""
        if token is not None:
            self.secrets.add(token)
            authorization = f"Bearer {token}"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.putrequest(method, "/check" + path, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", host)
            if authorization is not None:
                self.secrets.add(authorization)
                conn.putheader("Authorization", authorization)
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            response = conn.getresponse()
            answer = Answer(
                response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
            )
        finally:
            conn.close()
        return self._record(answer)

    def request(self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any) -> Answer:
        for name, value in (headers or {}).items():
            if name.lower() == "authorization":
                self.secrets.add(value)
        response = pool.request(method, self.url + path, headers=headers, timeout=30, **kwargs)
        return self._record(
            Answer(response.status, {k.lower(): v for k, v in response.headers.items()}, response.data)
        )

    def grant(self, form: dict[str, str], headers: dict[str, str] | None = None) -> Answer:
        self.secrets.update(v for k, v in form.items() if k in ("password", "client_secret"))
        return self.request(
            "POST",
            "/realms/datafrost/protocol/openid-connect/token",
            body=urlencode(form),
            headers={"Content-Type": "application/x-www-form-urlencoded", **(headers or {})},
        )

    def dev_token(self, body: Any, forwarded_for: str | None = None) -> Answer:
        """POST /dev/token with the realm's dev token secret (when it has one), as `datafrost token`."""
        headers = {"Content-Type": "application/json"}
        secret = read_dev_token_secret(self.data_dir)
        if secret is not None:
            self.secrets.add(secret)
            headers["X-Dev-Token-Secret"] = secret
        if forwarded_for is not None:
            headers["X-Forwarded-For"] = forwarded_for
        return self.request("POST", "/dev/token", body=json.dumps(body), headers=headers)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("authz")


@pytest.fixture(scope="module")
def authz(data_dir: Path) -> Iterator[Authz]:
    server = Authz(data_dir, {}).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def realm(authz: Authz, data_dir: Path) -> DevRealm:
    """The same realm the process uses (ensure_dev_realm is safe from several processes)."""
    found = ensure_dev_realm(data_dir, authz.issuer)
    authz.secrets.add(found.service_client_secret)
    return found


@pytest.fixture(scope="module")
def passwords(realm: DevRealm, authz: Authz) -> dict[str, str]:
    lines = (realm.directory / "credentials.txt").read_text().splitlines()
    found = dict(line.split("\t") for line in lines if line and not line.startswith("#"))
    authz.secrets.update(found.values())
    return found


def token_for(authz: Authz, realm: DevRealm, user: str, roles: list[str] | None = None) -> str:
    token = mint_token(realm, user, roles)
    authz.secrets.add(token)
    return token


def service_token(authz: Authz, realm: DevRealm) -> str:
    answer = authz.grant(
        {
            "grant_type": "client_credentials",
            "client_id": realm.service_client_id,
            "client_secret": realm.service_client_secret,
        }
    )
    assert answer.status == 200, answer.body
    token = str(answer.json()["access_token"])
    authz.secrets.add(token)
    return token


# -- the dev issuer -----------------------------------------------------------------------------------
def test_discovery_and_jwks(authz: Authz, realm: DevRealm) -> None:
    discovery = authz.request("GET", "/realms/datafrost/.well-known/openid-configuration").json()
    assert discovery["issuer"] == authz.issuer
    assert discovery["jwks_uri"] == authz.issuer + "/protocol/openid-connect/certs"
    assert discovery["token_endpoint"] == authz.issuer + "/protocol/openid-connect/token"
    assert set(discovery["grant_types_supported"]) == {"password", "client_credentials"}
    assert discovery["id_token_signing_alg_values_supported"] == ["RS256"]
    (key,) = authz.request("GET", "/realms/datafrost/protocol/openid-connect/certs").json()["keys"]
    assert (key["kid"], key["kty"], key["alg"], key["use"]) == (realm.kid, "RSA", "RS256", "sig")
    assert set(key) == {"kid", "kty", "alg", "use", "n", "e"}  # public parts only
    assert authz.request("GET", "/realms/other/.well-known/openid-configuration").status == 404


def test_password_grant_gives_a_keycloak_token(
    authz: Authz, realm: DevRealm, passwords: dict[str, str]
) -> None:
    answer = authz.grant(
        {
            "grant_type": "password",
            "client_id": "datafrost",
            "username": "demo",
            "password": passwords["demo"],
        }
    )
    assert answer.status == 200, answer.body
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 300)
    token = body["access_token"]
    authz.secrets.add(token)
    assert jwt.get_unverified_header(token)["kid"] == realm.kid
    certs = authz.issuer + "/protocol/openid-connect/certs"
    identity = TokenVerifier(authz.issuer, "datafrost", JwksCache(certs), "datafrost").verify(token)
    assert (identity.owner, identity.subject, identity.client) == (
        "demo",
        realm.users["demo"].id,
        "datafrost",
    )
    assert identity.can("editor") and not identity.can("admin")


def test_wrong_credentials_are_invalid_grant(authz: Authz, passwords: dict[str, str]) -> None:
    for username, password in (
        ("demo", "not-the-password-1"),
        ("ghost", "not-the-password-2"),
        ("demo", passwords["admin"]),
    ):
        answer = authz.grant(
            {"grant_type": "password", "client_id": "datafrost", "username": username, "password": password}
        )
        assert answer.status == 401
        assert answer.json() == {"error": "invalid_grant", "error_description": "Invalid user credentials"}


def test_client_credentials_grant(authz: Authz, realm: DevRealm) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": SERVICE_CLIENT,
        "client_secret": realm.service_client_secret,
    }
    by_form = authz.grant(form)
    basic = base64.b64encode(f"{SERVICE_CLIENT}:{realm.service_client_secret}".encode()).decode()
    by_basic = authz.grant({"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"})
    for answer in (by_form, by_basic):
        assert answer.status == 200, answer.body
        token = answer.json()["access_token"]
        authz.secrets.add(token)
        payload = jwt.decode(token, options={"verify_signature": False})
        assert payload["azp"] == SERVICE_CLIENT
        assert payload["resource_access"]["datafrost"]["roles"] == ["service"]
        assert payload["preferred_username"] == f"service-account-{SERVICE_CLIENT}"


def test_client_credentials_errors(authz: Authz) -> None:
    wrong = authz.grant(
        {"grant_type": "client_credentials", "client_id": SERVICE_CLIENT, "client_secret": "wrong-secret-123"}
    )
    assert (wrong.status, wrong.json()["error"]) == (401, "invalid_client")
    unknown = authz.grant(
        {"grant_type": "client_credentials", "client_id": "nope", "client_secret": "x-secret-9"}
    )
    assert (unknown.status, unknown.json()["error"]) == (401, "invalid_client")
    public = authz.grant({"grant_type": "client_credentials", "client_id": "datafrost"})
    assert (public.status, public.json()["error"]) == (401, "unauthorized_client")
    unsupported = authz.grant({"grant_type": "authorization_code", "client_id": "datafrost", "code": "x"})
    assert (unsupported.status, unsupported.json()["error"]) == (400, "unsupported_grant_type")
    missing = authz.grant({"client_id": "datafrost"})
    assert (missing.status, missing.json()["error"]) == (400, "invalid_request")


def test_credentials_in_the_query_string_are_not_read(authz: Authz, passwords: dict[str, str]) -> None:
    query = urlencode(
        {
            "grant_type": "password",
            "client_id": "datafrost",
            "username": "demo",
            "password": passwords["demo"],
        }
    )
    answer = authz.request(
        "POST",
        "/realms/datafrost/protocol/openid-connect/token?" + query,
        body=b"",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (answer.status, answer.json()["error"]) == (400, "invalid_request")


def test_dev_token_for_loopback_callers_only(authz: Authz, realm: DevRealm) -> None:
    answer = authz.dev_token({"user": "demo", "roles": ["viewer"], "ttl": 3600})
    assert answer.status == 200, answer.body
    token = answer.json()["access_token"]
    authz.secrets.add(token)
    payload = jwt.decode(token, options={"verify_signature": False})
    assert payload["resource_access"]["datafrost"]["roles"] == ["viewer"]
    assert payload["exp"] - payload["iat"] == 3600
    assert authz.dev_token({"user": "demo"}, forwarded_for="127.0.0.1").status == 200
    assert authz.dev_token({"user": "demo"}, forwarded_for="10.1.2.3").status == 403
    assert authz.dev_token({"user": "demo"}, forwarded_for="127.0.0.1, 192.168.0.5").status == 403
    assert authz.dev_token({"user": "demo"}, forwarded_for="not-an-ip").status == 403
    assert authz.dev_token({"user": "mallory"}).status == 400
    assert authz.dev_token({"user": "demo", "roles": ["root"]}).status == 400
    assert authz.dev_token({"user": "demo", "ttl": "long"}).status == 400
    assert authz.dev_token(["demo"]).status == 400


# -- ext-authz, as Kourier calls it -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/healthz"),
        ("GET", "/catalog/healthz"),
        ("GET", "/upload/readyz"),
        ("GET", "/authz/realms/datafrost/.well-known/openid-configuration"),
        ("GET", "/authz/realms/datafrost/protocol/openid-connect/certs"),
        ("POST", "/authz/realms/datafrost/protocol/openid-connect/token"),
        ("POST", "/authz/dev/token"),
    ],
)
def test_public_routes_are_allowed_without_a_token(authz: Authz, method: str, path: str) -> None:
    answer = authz.check(method, path, body=b"grant_type=password" if method == "POST" else b"")
    assert answer.status == 200
    assert "x-datafrost-user" not in answer.headers


@pytest.mark.parametrize("path", ["/web/index.html", "/", "/catalog/nothing-here", "/no-such-function/x"])
def test_a_path_no_route_declares_is_404_whatever_the_token(authz: Authz, realm: DevRealm, path: str) -> None:
    for token in (None, token_for(authz, realm, "admin")):
        answer = authz.check("GET", path, token)
        assert answer.status == 404 and answer.json() == {"error": f"no route for GET {path}"}


def test_no_token_is_401_with_a_challenge(authz: Authz) -> None:
    answer = authz.check("GET", "/catalog/images")
    assert answer.status == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in answer.json()["error"]
    assert authz.check("GET", "/catalog/images", authorization="Basic ZGVtbzpkZW1v").status == 401


def test_a_valid_token_is_allowed_with_identity_headers(authz: Authz, realm: DevRealm) -> None:
    answer = authz.check("GET", "/catalog/images?limit=5", token_for(authz, realm, "demo"))
    assert answer.status == 200
    assert answer.headers["x-datafrost-user"] == "demo"
    assert answer.headers["x-datafrost-subject"] == realm.users["demo"].id
    assert answer.headers["x-datafrost-roles"] == "editor"  # the platform roles only
    assert authz.check("HEAD", "/catalog/images", token_for(authz, realm, "demo")).status == 200


def test_identity_headers_survive_any_username(authz: Authz, realm: DevRealm) -> None:
    token = sign(
        {**claims(iss=realm.issuer, preferred_username="zoë\r\nx-evil: 1"), "aud": ["datafrost"]},
        realm.signing_key,
        kid=realm.kid,
    )
    answer = authz.check("GET", "/catalog/images", token_for_raw(authz, token))
    assert answer.status == 200
    assert answer.headers["x-datafrost-user"] == "zo%C3%AB%0D%0Ax-evil:%201"
    assert "x-evil" not in answer.headers


def token_for_raw(authz: Authz, token: str) -> str:
    authz.secrets.add(token)
    return token


def test_an_upload_body_of_up_to_8_kib(authz: Authz, realm: DevRealm) -> None:
    editor, viewer = token_for(authz, realm, "demo"), token_for(authz, realm, "demo", ["viewer"])
    body = b"\xff\xd8\xff\xe0" + os.urandom(8192 - 4)
    for size in (0, 1, 4096, 8192):
        assert authz.check("POST", "/upload", editor, body[:size]).status == 200
        assert authz.check("POST", "/upload/", viewer, body[:size]).status == 403
    assert authz.check("POST", "/upload", None, body).status == 401


@pytest.mark.parametrize(
    ("method", "path", "allowed", "refused"),
    [
        ("DELETE", "/catalog/images/abc", "editor", "viewer"),
        ("GET", "/catalog/images/abc/variants/thumb", "viewer", None),
        ("GET", "/brokers/default/triggers", "admin", "editor"),
        ("POST", "/brokers/default/triggers", "admin", "editor"),
        ("GET", "/dead-letters/", "admin", "service"),
        ("POST", "/dead-letters/abc/replay", "admin", "editor"),
        ("POST", "/brokers/default", "service", "editor"),
        ("POST", "/catalog/", "service", "editor"),
        ("POST", "/dead-letters/", "service", "editor"),
        ("GET", "/metrics", "viewer", None),
    ],
)
def test_roles_per_route(
    authz: Authz, realm: DevRealm, method: str, path: str, allowed: str, refused: str | None
) -> None:
    assert authz.check(method, path, token_for(authz, realm, "admin", [allowed])).status == 200
    if refused is not None:
        answer = authz.check(method, path, token_for(authz, realm, "admin", [refused]))
        assert answer.status == 403
        assert answer.json() == {"error": f"the {allowed} role is required"}


def test_a_service_token_from_client_credentials_posts_events(authz: Authz, realm: DevRealm) -> None:
    token = service_token(authz, realm)
    assert authz.check("POST", "/brokers/default", token).status == 200
    assert authz.check("GET", "/catalog/images", token).status == 403  # service is not viewer
    assert authz.check("POST", "/brokers/default", token_for(authz, realm, "admin")).status == 200


def test_host_routing_and_refused_paths(authz: Authz, realm: DevRealm) -> None:
    viewer = token_for(authz, realm, "demo", ["viewer"])
    assert authz.check("DELETE", "/images/abc", viewer, host="catalog.localhost:8080").status == 403
    assert authz.check("GET", "/images/abc", viewer, host="catalog.localhost:8080").status == 200
    assert authz.check("GET", "/", viewer, host="dead-letters.localhost").status == 403
    assert authz.check("GET", "/healthz/../dead-letters/", viewer).status == 400


def test_a_token_in_the_query_string_is_not_accepted(authz: Authz, realm: DevRealm) -> None:
    token = token_for(authz, realm, "admin")
    for query in ("access_token", "token", "authorization", "jwt"):
        answer = authz.check("GET", f"/catalog/images?{query}={token}")
        assert answer.status == 401, query


def forgeries(realm: DevRealm) -> dict[str, str]:
    """Every forgery of the issue, against the running dev realm."""
    now = int(time.time())
    honest = {
        **claims(iss=realm.issuer, aud=["datafrost"]),
        "resource_access": {"datafrost": {"roles": ["admin"]}},
    }
    header = {"typ": "JWT", "kid": realm.kid}
    return {
        "alg none": raw_token({**header, "alg": "none"}, honest),
        "HS256 with the public key": hs256_with(public_pem_of(realm), {**header, "alg": "HS256"}, honest),
        "wrong issuer": sign(
            {**honest, "iss": "http://127.0.0.1:1/realms/datafrost"}, realm.signing_key, kid=realm.kid
        ),
        "wrong audience": sign(
            {**honest, "aud": ["other"], "azp": "other"}, realm.signing_key, kid=realm.kid
        ),
        "expired": sign({**honest, "exp": now - 60, "iat": now - 400}, realm.signing_key, kid=realm.kid),
        "not yet valid": sign({**honest, "nbf": now + 120}, realm.signing_key, kid=realm.kid),
        "unknown kid": sign(honest, realm.signing_key, kid="rotated-away"),
        "another key, right kid": sign(honest, rsa_key(), kid=realm.kid),
        "no kid": sign(honest, realm.signing_key, kid=None),
        "garbage": "not.a.jwt",
    }


def public_pem_of(realm: DevRealm) -> bytes:
    return realm.signing_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_every_forgery_is_401(authz: Authz, realm: DevRealm) -> None:
    reasons = {}
    for name, token in forgeries(realm).items():
        answer = authz.check("DELETE", "/catalog/images/abc", token)
        assert answer.status == 401, name
        assert 'error="invalid_token"' in answer.headers["www-authenticate"], name
        reasons[name] = answer.json()["error"]
    assert reasons["expired"] == "token expired"
    assert reasons["wrong issuer"] == "wrong issuer"
    assert reasons["another key, right kid"] == "bad signature"
    assert reasons["unknown kid"] == "unknown signing key"


def test_a_flood_of_unknown_kids_does_not_flood_the_issuer(authz: Authz, realm: DevRealm) -> None:
    before = authz.log_path.read_text().count("fetched 1 signing key")
    for i in range(200):
        token = sign(claims(iss=realm.issuer), realm.signing_key, kid=f"made-up-{i}")
        assert authz.check("GET", "/catalog/images", token).status == 401
    after = authz.log_path.read_text().count("fetched 1 signing key")
    assert after - before <= 1


# -- other configurations -------------------------------------------------------------------------------
def test_unreachable_keys_fail_closed_and_the_dev_issuer_can_be_off(tmp_path: Path) -> None:
    dead = free_port()
    server = Authz(
        tmp_path,
        {
            "DATAFROST_AUTH_ISSUER": f"http://127.0.0.1:{dead}/realms/datafrost",
            "DATAFROST_AUTH_DEV_ISSUER": "off",
        },
    ).start()
    try:
        token = sign(claims(iss=f"http://127.0.0.1:{dead}/realms/datafrost"), rsa_key(), kid="k1")
        answer = server.check("GET", "/catalog/images", token)
        assert answer.status == 503
        assert token not in answer.body.decode()
        assert server.check("GET", "/healthz").status == 200
        assert server.dev_token({"user": "demo"}).status == 404
        assert server.request("GET", "/realms/datafrost/protocol/openid-connect/certs").status == 404
        assert not (tmp_path / "auth").exists()  # nothing of the dev realm was created
    finally:
        server.stop()
    assert token not in server.log_path.read_text()


def test_auth_off_allows_everything(tmp_path: Path) -> None:
    server = Authz(tmp_path, {"DATAFROST_AUTH": "off"}).start()
    try:
        assert server.check("DELETE", "/catalog/images/abc").status == 200
        assert server.check("GET", "/brokers/default/triggers").status == 200
    finally:
        server.stop()


def test_cluster_local_hosts_pass_only_when_configured(tmp_path: Path) -> None:
    server = Authz(tmp_path, {"DATAFROST_AUTH_CLUSTER_LOCAL_SUFFIXES": "svc.cluster.local, .svc"}).start()
    try:
        for host in ("catalog.datafrost.svc.cluster.local", "dead-letters.datafrost.svc:80"):
            allowed = server.check("POST", "/", host=host)
            assert (allowed.status, allowed.headers.get("x-datafrost-user")) == (200, None), host
        rabbitmq = server.check("POST", "/rabbitmq", host="storage-events.datafrost.svc.cluster.local")
        assert rabbitmq.status == 200
        for host in ("catalog.datafrost.example.com", "catalog.svc.cluster.local.example.com"):
            assert server.check("POST", "/", host=host).status == 401, host
        assert server.check("POST", "/catalog/", host="evil-svc").status == 401  # no host routing there
    finally:
        server.stop()


def test_cluster_local_hosts_are_not_trusted_by_default(authz: Authz) -> None:
    assert authz.check("POST", "/", host="catalog.datafrost.svc.cluster.local").status == 401
    assert authz.check("POST", "/storage-events/rabbitmq").status == 401


# -- last: nothing secret was ever logged or answered --------------------------------------------------------
def test_no_secret_in_any_log_line_or_error_body(
    authz: Authz, realm: DevRealm, passwords: dict[str, str]
) -> None:
    for token in forgeries(realm).values():  # once more, so this test stands on its own
        authz.check("GET", "/dead-letters/", token)
    authz.grant(
        {"grant_type": "password", "client_id": "datafrost", "username": "demo", "password": "pw-typo-4711"}
    )
    authz.check("GET", f"/catalog/images?access_token={token_for(authz, realm, 'admin')}")
    time.sleep(0.2)  # let the last log lines reach the file
    log = authz.log_path.read_text()
    assert "request denied" in log and "token refused" in log  # the cases were logged, just not their secrets
    texts = [log, *(body.decode(errors="replace") for body in authz.error_bodies)]
    secrets = {s for s in authz.secrets if len(s) >= 8}
    secrets |= {part for s in authz.secrets for part in s.split(".") if len(part) >= 16}
    secrets |= {realm.service_client_secret, *passwords.values(), "pw-typo-4711"}
    assert len(secrets) > 50
    for text in texts:
        for secret in secrets:
            assert secret not in text
        assert "Bearer ey" not in text and "Basic " not in text


def test_dev_token_can_add_a_user_to_the_dev_realm(authz: Authz, data_dir: Path) -> None:
    assert authz.dev_token({"user": "carol"}).status == 400  # unknown, and not asked to make her
    answer = authz.dev_token({"user": "carol", "create": True})
    assert answer.status == 200, answer.body
    payload = jwt.decode(answer.json()["access_token"], options={"verify_signature": False})
    assert payload["preferred_username"] == "carol"
    assert payload["resource_access"]["datafrost"]["roles"] == ["editor"]
    users = json.loads((data_dir / "auth" / "users.json").read_text())["users"]
    assert [u["roles"] for u in users if u["username"] == "carol"] == [["editor"]]
    assert authz.dev_token({"user": "carol"}).status == 200  # known from now on
    password = dict(
        line.split("\t")
        for line in (data_dir / "auth" / "credentials.txt").read_text().splitlines()
        if "\t" in line
    )["carol"]
    authz.secrets.add(password)
    grant = authz.grant(
        {"grant_type": "password", "client_id": "datafrost", "username": "carol", "password": password}
    )
    assert grant.status == 200, grant.body
    assert (data_dir / "buckets" / "uploads" / "carol").is_dir()  # a file dropped there is hers
    viewer = authz.dev_token({"user": "dave", "roles": ["viewer"], "create": True})
    assert viewer.status == 200, viewer.body
    for refused in (
        {"user": "../etc", "create": True},
        {"user": "", "create": True},
        {"user": "erin", "create": "yes"},
        {"user": "erin", "roles": ["root"], "create": True},
    ):
        assert authz.dev_token(refused).status == 400, refused
    assert authz.dev_token({"user": "erin", "create": True}, forwarded_for="10.1.2.3").status == 403
    assert "erin" not in (data_dir / "auth" / "users.json").read_text()
