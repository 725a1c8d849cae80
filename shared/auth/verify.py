"""Bearer-token verification against the identity provider's JWKS (Keycloak, or the dev issuer).

A token is accepted only when all of these hold:

- it comes from the `Authorization: Bearer` header (never a query string or a form field);
- its header names `alg` RS256 or ES256 (none, HS*, and everything else are refused before any key is
  looked up) and a `kid`, and the key with that kid has the matching type (RSA for RS256, EC P-256
  for ES256): a public key can never be used as an HMAC secret;
- the signature verifies with that key;
- `exp`, `iss` and `sub` are present; `iss` equals the configured issuer exactly; `exp`, `nbf` and
  `iat` are honoured with at most 30 s leeway;
- audience: `aud` (a string or a list) contains the configured audience, OR `azp` equals it.
  Keycloak issues a token to a client (`azp`) and fills `aud` from audience mappers, often with just
  "account"; a token issued to our own client is meant for us;
- when a `typ` claim is present it is "Bearer" (Keycloak marks ID tokens "ID" and refresh tokens
  "Refresh"; neither is an access token).

`InvalidToken.reason` is safe to show a client and to log: it never contains the token or any part.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import jwt
from jwt import exceptions as jwt_errors

from shared.auth.identity import Identity
from shared.auth.jwks import KEY_ALGORITHMS, AuthUnavailable, JwksCache, UnknownKey
from shared.settings import MAX_AUTH_LEEWAY_SECONDS, Settings

ALGORITHMS = ("RS256", "ES256")
DEFAULT_REALM = "datafrost"
DEFAULT_DEV_ISSUER = f"http://127.0.0.1:8080/authz/realms/{DEFAULT_REALM}"
CERTS_PATH = "/protocol/openid-connect/certs"
TOKEN_PATH = "/protocol/openid-connect/token"
MAX_TOKEN_BYTES = 16 * 1024
REQUIRED_CLAIMS = ("exp", "iss", "sub")

__all__ = ["ALGORITHMS", "AuthUnavailable", "InvalidToken", "TokenVerifier", "bearer_token"]


class InvalidToken(Exception):
    """The token is refused; `reason` names why without echoing any of it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# PyJWT's errors, most specific first, mapped to fixed reasons (their messages are never passed on).
_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt_errors.ExpiredSignatureError, "token expired"),
    (jwt_errors.ImmatureSignatureError, "token not yet valid"),
    (jwt_errors.InvalidIssuerError, "wrong issuer"),
    (jwt_errors.InvalidAudienceError, "wrong audience"),
    (jwt_errors.InvalidSignatureError, "bad signature"),
    (jwt_errors.InvalidAlgorithmError, "algorithm not allowed"),
    (jwt_errors.InvalidIssuedAtError, "malformed iat claim"),
    (jwt_errors.InvalidKeyError, "unusable signing key"),
    (jwt_errors.DecodeError, "malformed token"),
)


def _reason(exc: jwt_errors.PyJWTError) -> str:
    if isinstance(exc, jwt_errors.MissingRequiredClaimError):
        return f"missing claim {exc.claim}" if exc.claim in REQUIRED_CLAIMS else "missing claim"
    return next((reason for kind, reason in _REASONS if isinstance(exc, kind)), "invalid token")


class HeaderItems(Protocol):
    """A dict of headers, or Flask's / werkzeug's headers."""

    def items(self) -> Iterable[tuple[str, str]]: ...


def bearer_token(headers: HeaderItems) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, else None. Nothing else is looked at."""
    value = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token


class TokenVerifier:
    """Verifies access tokens of one issuer for one audience; shares one JWKS cache."""

    def __init__(self, issuer: str, audience: str, jwks: JwksCache, client: str, leeway: float = 30) -> None:
        self.issuer = issuer
        self.audience = audience
        self.jwks = jwks
        self.client = client
        self.leeway = max(0.0, min(float(leeway), float(MAX_AUTH_LEEWAY_SECONDS)))

    def verify(self, token: str) -> Identity:
        """The identity the token names; raises InvalidToken, or AuthUnavailable (no keys to check with)."""
        claims = self.verified_claims(token)
        return Identity.from_claims(claims, self.client)

    def verified_claims(self, token: str) -> dict[str, Any]:
        """The claims of a token that passes every check in the module docstring."""
        if not token or len(token) > MAX_TOKEN_BYTES:
            raise InvalidToken("token missing or too large")
        try:
            header = jwt.get_unverified_header(token)
        except jwt_errors.PyJWTError:
            raise InvalidToken("malformed token") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALGORITHMS:
            raise InvalidToken(f"token algorithm not allowed (accepted: {', '.join(ALGORITHMS)})")
        if not isinstance(kid, str) or not kid or len(kid) > 256:
            raise InvalidToken("token has no kid")
        try:
            key = self.jwks.key_for(kid)
        except UnknownKey:
            raise InvalidToken("unknown signing key") from None
        if KEY_ALGORITHMS.get(key.key_type or "") != alg:
            raise InvalidToken("token algorithm does not match its signing key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": list(REQUIRED_CLAIMS), "verify_aud": False},
            )
        except jwt_errors.PyJWTError as exc:
            raise InvalidToken(_reason(exc)) from None
        self._check_claims(claims)
        return claims

    def _check_claims(self, claims: dict[str, Any]) -> None:
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if self.audience not in audiences and claims.get("azp") != self.audience:
            raise InvalidToken("wrong audience")
        typ = claims.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.lower() != "bearer"):
            raise InvalidToken("not an access token")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise InvalidToken("malformed sub claim")


def realm_of(issuer: str) -> str:
    """The realm name of a Keycloak-style issuer URL (`.../realms/<realm>`), else the default realm."""
    _, sep, realm = issuer.rstrip("/").rpartition("/realms/")
    return realm if sep and realm and "/" not in realm else DEFAULT_REALM


def issuer_of(config: Settings) -> str:
    """The issuer tokens must carry: DATAFROST_AUTH_ISSUER, else the dev issuer under the default gateway."""
    return (config.auth_issuer or DEFAULT_DEV_ISSUER).rstrip("/")


def jwks_url_of(config: Settings) -> str:
    """DATAFROST_AUTH_JWKS_URL, else Keycloak's certs endpoint under the issuer."""
    return config.auth_jwks_url or issuer_of(config) + CERTS_PATH


def verifier_from_settings(config: Settings) -> TokenVerifier:
    """A verifier for these settings (no connection is made until the first token is checked)."""
    return TokenVerifier(
        issuer_of(config),
        config.auth_audience,
        JwksCache(jwks_url_of(config)),
        config.auth_client,
        config.auth_leeway_seconds,
    )
