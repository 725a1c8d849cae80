"""The dev issuer's HTTP side, Keycloak's protocol: discovery, JWKS, the token endpoint, and /dev/token.

Token endpoint (`POST /realms/<realm>/protocol/openid-connect/token`, form-encoded body only; nothing
is read from the query string):

- `grant_type=password`: `client_id`, `username`, `password` (a confidential client also authenticates
  with `client_secret` or HTTP Basic);
- `grant_type=client_credentials`: a confidential client's `client_id` + `client_secret`, or Basic.

Errors are OAuth2's, as Keycloak sends them: 400 `invalid_request` / `unsupported_grant_type`,
401 `invalid_client` (unknown client or wrong secret), 401 `invalid_grant` (wrong user or password),
401 `unauthorized_client` (a public client asking for client credentials).

Brute-force detection as Keycloak's (`shared.auth.brute_force`, DATAFROST_AUTH_BRUTE_FORCE_*): failures
count per user, per confidential client and per client address; while one of them is locked out its
attempts are refused unchecked with the answer wrong credentials get (Keycloak's `invalid_grant`
"Invalid user credentials"), so a lockout is never revealed. Every refusal is counted in
`datafrost_auth_login_failures_total{reason}` and logged ("login failure": user, client, address,
counts; never a password or secret). The counts live in this process's memory.

`POST /dev/token` (JSON `{"user", "roles"?, "ttl"?}`) mints a token without a password, for
`datafrost token` and the CLI. It answers only when all of these hold, else 403 with the reason:
- the request is addressed to this machine: Host (and X-Forwarded-Host, which the local gateway sets to
  its client's Host) is localhost, `*.localhost`, a loopback address or the platform's own public host,
  so a page whose domain was rebound to 127.0.0.1 (DNS rebinding) is refused;
- it comes from this machine: the peer and every address in X-Forwarded-For are loopback or the
  platform's public address (the local gateway sets X-Forwarded-For to its client's address, so a
  request from another host through `datafrost dev --host 0.0.0.0` is refused);
- it carries the realm's dev token secret (header X-Dev-Token-Secret: the contents of
  `<data dir>/auth/dev-token-secret`, 0600), so a process that cannot read the data dir gets nothing.
It exists only while the dev issuer is in use (DATAFROST_AUTH_DEV_ISSUER, which `datafrost dev` sets):
404 otherwise.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import unquote_plus, urlsplit

import flask

from functions.runtime import error_response, json_response
from shared import metrics, safe_json
from shared.auth.brute_force import BruteForceProtector, Key, Kind, address_key
from shared.auth.dev_issuer import (
    DEFAULT_TTL,
    DEV_TOKEN_SECRET_FILE,
    DevRealm,
    DevRealmError,
    mint_service_token,
    mint_token,
)
from shared.logging import log_fields
from shared.loopback import hostname, is_loopback_address, names_loopback

log = logging.getLogger("datafrost.authz")
MAX_FORM_BYTES = 64 * 1024
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
DEV_SECRET_HEADER = "X-Dev-Token-Secret"
CLIENT_REASONS = frozenset({metrics.INVALID_CLIENT_CREDENTIALS, metrics.CLIENT_TEMPORARILY_DISABLED})


def oauth_error(error: str, description: str, status: int) -> flask.Response:
    response = json_response({"error": error, "error_description": description}, status)
    response.headers.update(NO_STORE)
    return response


def _token_response(token: str, ttl: int) -> flask.Response:
    response = json_response(
        {
            "access_token": token,
            "expires_in": ttl,
            "refresh_expires_in": 0,
            "token_type": "Bearer",
            "not-before-policy": 0,
            "scope": "profile email",
        }
    )
    response.headers.update(NO_STORE)
    return response


def _basic_credentials(request: flask.Request) -> tuple[str, str] | None:
    """client_id and secret of an `Authorization: Basic` header (form-url-decoded, RFC 6749 2.3.1)."""
    scheme, _, value = (request.headers.get("Authorization") or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (unquote_plus(client_id), unquote_plus(secret)) if sep else None


def token_endpoint(request: flask.Request, realm: DevRealm, guard: BruteForceProtector) -> flask.Response:
    if request.method != "POST":
        return oauth_error("invalid_request", "HTTP method not allowed: use POST", 405)
    if (request.content_length or 0) > MAX_FORM_BYTES:
        return oauth_error("invalid_request", "request too large", 413)
    if request.mimetype != "application/x-www-form-urlencoded":
        return oauth_error("invalid_request", "the body must be application/x-www-form-urlencoded", 400)
    form = request.form
    basic = _basic_credentials(request)
    client_id = basic[0] if basic else form.get("client_id", "")
    secret = basic[1] if basic else form.get("client_secret")
    grant = form.get("grant_type", "")
    if not grant:
        return oauth_error("invalid_request", "Missing form parameter: grant_type", 400)
    if grant not in ("password", "client_credentials"):
        return oauth_error("unsupported_grant_type", "Unsupported grant_type", 400)
    if not client_id:
        return oauth_error("invalid_client", "Missing form parameter: client_id", 401)
    attempt = Attempt(guard, grant, client_id, address_key(client_address(request)))
    if guard.locked(attempt.address):
        return attempt.refused(metrics.ADDRESS_TEMPORARILY_BLOCKED)
    known = realm.clients.get(client_id)
    client_key = Key(Kind.CLIENT, client_id) if known is not None and not known.public else None
    if client_key is not None and guard.locked(client_key):
        return attempt.refused(metrics.CLIENT_TEMPORARILY_DISABLED)
    client = realm.authenticate_client(client_id, secret)
    if client is None:
        return attempt.failed(metrics.INVALID_CLIENT_CREDENTIALS, client_key)
    if client_key is not None:
        guard.success(client_key)
    if grant == "client_credentials":
        if client.public:
            return oauth_error(
                "unauthorized_client", "Public client not allowed to retrieve service account", 401
            )
        log.info("token issued", extra=log_fields(client_id=client_id, grant=grant))
        return _token_response(mint_service_token(realm, client.client_id, DEFAULT_TTL), DEFAULT_TTL)
    username, password = form.get("username", ""), form.get("password", "")
    if not username or not password:
        return oauth_error("invalid_request", "Missing parameter: username or password", 400)
    attempt.username = username
    user_key = Key(Kind.USER, username) if username in realm.users else None  # Keycloak: known users
    if user_key is not None and guard.locked(user_key):
        return attempt.refused(metrics.USER_TEMPORARILY_DISABLED)
    user = realm.authenticate_user(username, password)
    if user is None:
        return attempt.failed(metrics.INVALID_USER_CREDENTIALS, user_key)
    if user_key is not None:
        guard.success(user_key)
    log.info("token issued", extra=log_fields(user=user.username, client_id=client_id, grant=grant))
    token = mint_token(realm, user.username, ttl=DEFAULT_TTL, client_id=client.client_id)
    return _token_response(token, DEFAULT_TTL)


@dataclass
class Attempt:
    """One call of the token endpoint, for counting and answering its failures as Keycloak does: a
    locked user, client or address gets the very answer wrong credentials get."""

    guard: BruteForceProtector
    grant: str
    client_id: str
    address: Key
    username: str | None = None

    def refused(self, reason: str) -> flask.Response:
        """Refused unchecked: something it names is locked out (not counted again, as in Keycloak)."""
        metrics.auth_login_failures.labels(reason).inc()
        log.warning("token refused during a lockout", extra=log_fields(reason=reason, **self._fields()))
        return self._answer(reason)

    def failed(self, reason: str, account: Key | None) -> flask.Response:
        """Wrong credentials: counted against the address and the account (when it exists)."""
        metrics.auth_login_failures.labels(reason).inc()
        fields = {"reason": reason, **self._fields()}
        for key in (self.address, account):
            if key is None:
                continue
            lockout = self.guard.failure(key)
            fields[f"{key.kind.value}_failures"] = lockout.failures
            if lockout.seconds:
                locked = "until authz restarts" if lockout.permanent else f"{lockout.seconds:g} s"
                fields[f"{key.kind.value}_locked"] = locked
        log.warning("login failure", extra=log_fields(**fields))
        return self._answer(reason)

    def _fields(self) -> dict[str, object]:
        fields: dict[str, object] = {"grant": self.grant, "client_id": self.client_id[:64]}
        fields["address"] = self.address.name
        if self.username is not None:
            fields["user"] = self.username[:64]
        return fields

    def _answer(self, reason: str) -> flask.Response:
        """What wrong credentials of the kind checked get: the client's, or (password grant) the user's."""
        client_checked = reason in CLIENT_REASONS or (
            reason == metrics.ADDRESS_TEMPORARILY_BLOCKED and self.grant == "client_credentials"
        )
        if client_checked:
            return oauth_error("invalid_client", "Invalid client or Invalid client credentials", 401)
        return oauth_error("invalid_grant", "Invalid user credentials", 401)


def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return None


def _forwarded(request: flask.Request, header: str) -> list[str]:
    return [hop.strip() for hop in (request.headers.get(header) or "").split(",") if hop.strip()]


def client_address(request: flask.Request) -> str:
    """The client's address: the peer, or, behind a proxy on this machine (the local gateway, which
    sets it), the last hop in X-Forwarded-For."""
    peer = request.remote_addr or ""
    forwarded = _forwarded(request, "X-Forwarded-For")
    return forwarded[-1] if forwarded and is_loopback_address(peer) else peer


@dataclass(frozen=True)
class ThisMachine:
    """The names and addresses that mean this machine: loopback, and the platform's own public host
    (DATAFROST_PUBLIC_URL: `datafrost dev --host <address>` serves there)."""

    public_host: str | None = None

    @classmethod
    def of(cls, public_url: str | None) -> ThisMachine:
        return cls(urlsplit(public_url).hostname if public_url else None)

    def names(self, host: str) -> bool:
        """A Host header naming this machine: localhost, *.localhost, a loopback address, or the
        platform's public host (a DNS-rebinding page sends its own domain and is refused)."""
        if names_loopback(host):
            return True
        return self.public_host is not None and hostname(host) == self.public_host.lower()

    def is_address(self, address: str) -> bool:
        """A peer address of this machine: loopback, or the platform's public host's address."""
        if is_loopback_address(address):
            return True
        ip = _ip(address)
        return ip is not None and self.public_host is not None and ip == _ip(self.public_host)


def addressed_here(request: flask.Request, machine: ThisMachine) -> bool:
    """Host (and X-Forwarded-Host, which the local gateway sets to its client's Host) name this machine."""
    return all(machine.names(host) for host in [request.host, *_forwarded(request, "X-Forwarded-Host")])


def from_this_machine(request: flask.Request, machine: ThisMachine) -> bool:
    """The peer and every hop named in X-Forwarded-For are addresses of this machine."""
    hops = [request.remote_addr or "", *_forwarded(request, "X-Forwarded-For")]
    return all(machine.is_address(hop) for hop in hops)


def _dev_secret_refusal(request: flask.Request, realm: DevRealm) -> str | None:
    """Why the request's dev token secret is not the realm's, or None when it is."""
    given = request.headers.get(DEV_SECRET_HEADER)
    if not given:
        return (
            f"dev tokens need the dev token secret: send it in the {DEV_SECRET_HEADER} header (the "
            f"contents of <data dir>/auth/{DEV_TOKEN_SECRET_FILE}; `datafrost token` reads it)"
        )
    if not hmac.compare_digest(given.strip().encode(), realm.dev_token_secret.encode()):
        return (
            f"wrong dev token secret: {DEV_SECRET_HEADER} must be the contents of "
            f"<data dir>/auth/{DEV_TOKEN_SECRET_FILE} of this platform"
        )
    return None


def _json_body(request: flask.Request) -> Any:
    """The JSON body (None unless it is JSON, within MAX_FORM_BYTES and not nested too deep)."""
    if not request.is_json or (request.content_length or 0) > MAX_FORM_BYTES:
        return None
    try:
        return safe_json.loads(request.get_data())
    except ValueError:
        return None


class Realms(Protocol):
    """The realm being served, and how a user is added to it."""

    realm: DevRealm

    def add_user(self, username: str, roles: Sequence[str] | None) -> DevRealm: ...


def from_loopback(request: flask.Request) -> bool:
    """The peer and every hop named in X-Forwarded-For are loopback addresses."""
    return all(
        is_loopback_address(h) for h in [request.remote_addr or "", *_forwarded(request, "X-Forwarded-For")]
    )


def dev_token(request: flask.Request, realms: Realms, machine: ThisMachine) -> flask.Response:
    if request.method != "POST":
        return error_response("mint a dev token with POST /dev/token", 405)
    if not addressed_here(request, machine):
        log.warning("dev token refused: the Host header names another machine")
        return error_response(
            "dev tokens are minted only for requests addressed to this machine by its Host header: "
            "localhost, a loopback address, or the address `datafrost dev --host` serves on",
            403,
        )
    if not from_this_machine(request, machine):
        log.warning("dev token refused: the caller is not on this machine")
        return error_response("dev tokens are minted for callers on this machine only", 403)
    refusal = _dev_secret_refusal(request, realms.realm)
    if refusal is not None:
        metrics.auth_login_failures.labels(metrics.INVALID_DEV_TOKEN_SECRET).inc()
        log.warning(
            "dev token refused: no or a wrong dev token secret",
            extra=log_fields(address=client_address(request)),
        )
        return error_response(refusal, 403)
    body = _json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("user"), str):
        return error_response(
            'send JSON {"user": NAME, "roles"?: [...], "ttl"?: seconds, "create"?: true}', 400
        )
    roles, ttl, create = body.get("roles"), body.get("ttl", DEFAULT_TTL), body.get("create", False)
    if roles is not None and (not isinstance(roles, list) or not all(isinstance(r, str) for r in roles)):
        return error_response("roles must be a list of role names", 400)
    if not isinstance(ttl, int) or isinstance(ttl, bool):
        return error_response("ttl must be an integer number of seconds", 400)
    if not isinstance(create, bool):
        return error_response("create must be true or false", 400)
    realm = realms.realm
    try:
        if body["user"] not in realm.users and create:
            if not from_loopback(request):
                return error_response("dev users are made only for callers on loopback", 403)
            realm = realms.add_user(body["user"], roles)
            log.info("dev user created", extra=log_fields(user=body["user"], roles=roles))
        token = mint_token(realm, body["user"], roles, ttl)
    except DevRealmError as exc:
        return error_response(str(exc), 400)
    log.info("dev token issued", extra=log_fields(user=body["user"], roles=roles, ttl=ttl))
    return _token_response(token, ttl)


def realm_route(
    request: flask.Request, realm: DevRealm, guard: BruteForceProtector, realm_name: str, rest: str
) -> flask.Response:
    """`/realms/<realm_name>/<rest>`: Keycloak's endpoints for the one realm this issuer has."""
    if realm_name != realm.name:
        return json_response({"error": "Realm does not exist"}, 404)
    if rest == ".well-known/openid-configuration" and request.method in ("GET", "HEAD"):
        return json_response(realm.discovery())
    if rest == "protocol/openid-connect/certs" and request.method in ("GET", "HEAD"):
        return json_response(realm.jwks())
    if rest == "protocol/openid-connect/token":
        return token_endpoint(request, realm, guard)
    return error_response(f"no route for {request.method} /realms/{realm_name}/{rest}", 404)
