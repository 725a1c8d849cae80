"""Real keys, forged and honest JWTs, and a real JWKS server on loopback, for the auth tests."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ISSUER = "https://keycloak.test/realms/datafrost"
AUDIENCE = "datafrost"
CLIENT = "datafrost"


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ec_key(curve: ec.EllipticCurve | None = None) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(curve or ec.SECP256R1())


def public_jwk(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, kid: str, **extra: Any) -> dict[str, Any]:
    """The public JWK as Keycloak publishes it (kid, alg, use sig)."""
    if isinstance(key, rsa.RSAPrivateKey):
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        alg = "RS256"
    else:
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
        alg = "ES256"
    return {**jwk, "kid": kid, "alg": alg, "use": "sig", **extra}


def public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def claims(**overrides: Any) -> dict[str, Any]:
    """Keycloak-shaped access-token claims, valid for five minutes; None in overrides drops a claim."""
    now = int(time.time())
    base: dict[str, Any] = {
        "exp": now + 300,
        "iat": now,
        "jti": "0b7c6f0e-1",
        "iss": ISSUER,
        "aud": "account",
        "sub": "f1e2d3c4-0000-4000-8000-000000000001",
        "typ": "Bearer",
        "azp": CLIENT,
        "preferred_username": "alice",
        "realm_access": {"roles": ["default-roles-datafrost", "offline_access"]},
        "resource_access": {CLIENT: {"roles": ["editor"]}, "account": {"roles": ["manage-account"]}},
        "scope": "profile email",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(
    payload: Mapping[str, Any],
    key: Any,
    alg: str = "RS256",
    kid: str | None = "k1",
    headers: Mapping[str, Any] | None = None,
) -> str:
    extra = {**({"kid": kid} if kid is not None else {}), **(headers or {})}
    return jwt.encode(dict(payload), key, algorithm=alg, headers=extra)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_token(header: Mapping[str, Any], payload: Mapping[str, Any], signature: bytes = b"") -> str:
    """A JWT assembled by hand (for algorithms a library refuses to produce)."""
    head = _b64(json.dumps(dict(header)).encode())
    body = _b64(json.dumps(dict(payload)).encode())
    return f"{head}.{body}.{_b64(signature)}"


def hs256_with(secret: bytes, header: Mapping[str, Any], payload: Mapping[str, Any]) -> str:
    """HS256 computed by hand with `secret` (PyJWT refuses a PEM public key as an HMAC secret)."""
    head = _b64(json.dumps(dict(header)).encode())
    body = _b64(json.dumps(dict(payload)).encode())
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(mac)}"


class JwksServer:
    """A JWKS endpoint on loopback: `keys` is served as {"keys": [...]}; `requests` counts GETs.

    `status` other than 200 answers that status; `stop()` closes the port (connection refused).
    """

    def __init__(self, keys: list[dict[str, Any]] | None = None) -> None:
        self.keys: list[dict[str, Any]] = list(keys or [])
        self.status = 200
        self.body: bytes | None = None  # served instead of the JWKS when set
        self.requests = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with server._lock:
                    server.requests += 1
                body = server.body if server.body is not None else json.dumps({"keys": server.keys}).encode()
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/realms/datafrost/protocol/openid-connect/certs"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
