"""The dev issuer's HTTP side, Keycloak's protocol: discovery, JWKS, the token endpoint, and /dev/token.

Token endpoint (`POST /realms/<realm>/protocol/openid-connect/token`, form-encoded body only; nothing
is read from the query string):

- `grant_type=password`: `client_id`, `username`, `password` (a confidential client also authenticates
  with `client_secret` or HTTP Basic);
- `grant_type=client_credentials`: a confidential client's `client_id` + `client_secret`, or Basic.

Errors are OAuth2's, as Keycloak sends them: 400 `invalid_request` / `unsupported_grant_type`,
401 `invalid_client` (unknown client or wrong secret), 401 `invalid_grant` (wrong user or password),
401 `unauthorized_client` (a public client asking for client credentials).

`POST /dev/token` (JSON `{"user", "roles"?, "ttl"?}`) mints a token without a password, for
`datafrost token` and the CLI. It answers only callers on this machine: the peer address and every
address in X-Forwarded-For must be loopback (the local gateway sets X-Forwarded-For to its client's
address, so a request from another host through `datafrost dev --host 0.0.0.0` is refused). It
exists only while the dev issuer is in use (DATAFROST_AUTH_DEV_ISSUER; off by default when the issuer
is not on a loopback host, e.g. a real Keycloak or a cluster): 404 otherwise.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import logging
from typing import Any
from urllib.parse import unquote_plus

import flask

from functions.runtime import error_response, json_response
from shared import safe_json
from shared.auth.dev_issuer import DEFAULT_TTL, DevRealm, DevRealmError, mint_service_token, mint_token
from shared.logging import log_fields

log = logging.getLogger("datafrost.authz")
MAX_FORM_BYTES = 64 * 1024
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


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


def token_endpoint(request: flask.Request, realm: DevRealm) -> flask.Response:
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
    client = realm.authenticate_client(client_id, secret)
    if client is None:
        log.info("token refused: bad client", extra=log_fields(client_id=client_id[:64], grant=grant))
        return oauth_error("invalid_client", "Invalid client or Invalid client credentials", 401)
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
    user = realm.authenticate_user(username, password)
    if user is None:
        log.info("token refused: bad user credentials", extra=log_fields(client_id=client_id, grant=grant))
        return oauth_error("invalid_grant", "Invalid user credentials", 401)
    log.info("token issued", extra=log_fields(user=user.username, client_id=client_id, grant=grant))
    token = mint_token(realm, user.username, ttl=DEFAULT_TTL, client_id=client.client_id)
    return _token_response(token, DEFAULT_TTL)


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def from_this_machine(request: flask.Request) -> bool:
    """The peer and every hop named in X-Forwarded-For are loopback addresses."""
    forwarded = [hop for hop in (request.headers.get("X-Forwarded-For") or "").split(",") if hop.strip()]
    return _loopback(request.remote_addr or "") and all(_loopback(hop) for hop in forwarded)


def _json_body(request: flask.Request) -> Any:
    """The JSON body (None unless it is JSON, within MAX_FORM_BYTES and not nested too deep)."""
    if not request.is_json or (request.content_length or 0) > MAX_FORM_BYTES:
        return None
    try:
        return safe_json.loads(request.get_data())
    except ValueError:
        return None


def dev_token(request: flask.Request, realm: DevRealm) -> flask.Response:
    if request.method != "POST":
        return error_response("mint a dev token with POST /dev/token", 405)
    if not from_this_machine(request):
        log.warning("dev token refused: the caller is not on this machine")
        return error_response("dev tokens are minted for callers on this machine only", 403)
    body = _json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("user"), str):
        return error_response('send JSON {"user": NAME, "roles"?: [...], "ttl"?: seconds}', 400)
    roles, ttl = body.get("roles"), body.get("ttl", DEFAULT_TTL)
    if roles is not None and (not isinstance(roles, list) or not all(isinstance(r, str) for r in roles)):
        return error_response("roles must be a list of role names", 400)
    if not isinstance(ttl, int) or isinstance(ttl, bool):
        return error_response("ttl must be an integer number of seconds", 400)
    try:
        token = mint_token(realm, body["user"], roles, ttl)
    except DevRealmError as exc:
        return error_response(str(exc), 400)
    log.info("dev token issued", extra=log_fields(user=body["user"], roles=roles, ttl=ttl))
    return _token_response(token, ttl)


def realm_route(request: flask.Request, realm: DevRealm, realm_name: str, rest: str) -> flask.Response:
    """`/realms/<realm_name>/<rest>`: Keycloak's endpoints for the one realm this issuer has."""
    if realm_name != realm.name:
        return json_response({"error": "Realm does not exist"}, 404)
    if rest == ".well-known/openid-configuration" and request.method in ("GET", "HEAD"):
        return json_response(realm.discovery())
    if rest == "protocol/openid-connect/certs" and request.method in ("GET", "HEAD"):
        return json_response(realm.jwks())
    if rest == "protocol/openid-connect/token":
        return token_endpoint(request, realm)
    return error_response(f"no route for {request.method} /realms/{realm_name}/{rest}", 404)
