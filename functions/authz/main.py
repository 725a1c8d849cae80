"""authz: the platform's auth service: Kourier's HTTP ext-authz check, and the dev issuer.

Consumes / emits: no events (kind http).

Ext-authz (`/check/<original path>`): Kourier, configured with `extauthz-protocol: http` and
`extauthz-path-prefix: /check`, sends each client request's method and path under that prefix,
with only Host, Authorization and Content-Length (and at most the first 8 KiB of the body, which is
never read). The answer:

- 200: allowed, because the route is public (the registry's table: every function's spec declares
  the role of each of its routes, `functions.registry.gateway_policy`), auth is off (DATAFROST_AUTH=off),
  the Host is cluster-local (DATAFROST_AUTH_CLUSTER_LOCAL_SUFFIXES, set on Knative: Kourier's public
  listener has no route for such a host, so only in-cluster callers get through with it; user-facing
  routes still verify the token in the function), or the bearer token verifies and its roles cover
  the route. With a token, the 200 carries `x-datafrost-user` (preferred_username, else sub;
  percent-encoded when not plain ASCII), `x-datafrost-subject` and `x-datafrost-roles`
  (the platform roles held, comma-separated: viewer, editor, admin, service) for the gateway to
  forward upstream;
- 401 `{"error": reason}` + `WWW-Authenticate: Bearer ...`: no token, or a token that does not verify;
- 403: the token is valid but its roles do not cover the route;
- 400: a path with `.`/`..` segments; 404: no function or gateway route declares the path;
- 503: the identity provider's keys are unavailable (fail closed).

Dev issuer (Keycloak's protocol, see `functions.authz.oidc`; the gateway maps `/authz/<rest>` here):
`GET /realms/<realm>/.well-known/openid-configuration`, `GET /realms/<realm>/protocol/openid-connect/certs`,
`POST /realms/<realm>/protocol/openid-connect/token` (with Keycloak's brute-force detection),
`POST /dev/token` (this machine only, with the data dir's dev token secret; `"create": true` adds an
unknown user to the realm, for loopback callers only). Served while the dev
issuer is in use (DATAFROST_AUTH_DEV_ISSUER), 404 otherwise; its realm lives in `<data_dir>/auth/`.

Nothing here logs or returns a token, a password, a client secret or an Authorization header.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from urllib.parse import quote

import flask

from functions.authz import oidc
from functions.context import Call
from functions.registry import gateway_policy
from functions.runtime import error_response, target
from functions.spec import PUBLIC, FunctionSpec, RouteHandler, Scaling, Serves, route
from shared.auth.access import Denied, authorize
from shared.auth.brute_force import BruteForceProtector
from shared.auth.dev_issuer import DevRealm, add_dev_user, ensure_dev_realm
from shared.auth.identity import EDITOR, KNOWN_ROLES
from shared.auth.policy import NoRoute, RefusedPath, gateway_path
from shared.auth.verify import issuer_of, verifier_from_settings
from shared.errors import HttpError
from shared.logging import log_fields
from shared.paths import request_path
from shared.settings import Settings

CHECK_PREFIX = "/check"
ANY_METHOD = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
log = logging.getLogger("datafrost.authz")


def dev_realm(config: Settings) -> DevRealm:
    return ensure_dev_realm(
        config.data_dir, issuer_of(config), audience=config.auth_audience, client=config.auth_client
    )


class LiveRealm:
    """The dev realm this process serves, replaced when `datafrost token --user NAME` adds a user."""

    def __init__(self, config: Settings) -> None:
        self.realm = dev_realm(config)
        self._config = config
        self._lock = threading.Lock()

    def add_user(self, username: str, roles: Sequence[str] | None) -> DevRealm:
        """The realm with `username` in it (made with `roles`, else editor), and its upload folder
        in the local store, so a file dropped into `uploads/<username>/` is theirs."""
        with self._lock:
            self.realm = add_dev_user(self.realm, username, tuple(roles) if roles else (EDITOR,))
        if self._config.store == "local":
            folder = self._config.local_store_root / self._config.uploads_bucket / username
            folder.mkdir(parents=True, exist_ok=True)
        return self.realm


def function_names() -> frozenset[str]:
    """Every function's name, for host routing (`<function>.<domain>`)."""
    from functions.registry import all_specs

    return frozenset(spec.name for spec in all_specs())


def _deny(denied: Denied, method: str, path: str) -> flask.Response:
    fields: dict[str, object] = {"method": method, "path": path[:200], "status": denied.status}
    fields["reason"] = denied.reason
    if denied.user is not None:
        fields["user"] = denied.user
    log.info("request denied", extra=log_fields(**fields))
    response = error_response(denied.reason, denied.status)
    if denied.challenge:
        response.headers["WWW-Authenticate"] = denied.challenge
    return response


def header_value(text: str) -> str:
    """Percent-encoded (RFC 3986) where not plain printable ASCII: usernames may be any Unicode."""
    return quote(text, safe="@._-+~!$&'()*,;=:")


def is_cluster_local(host: str | None, config: Settings) -> bool:
    """A Host only in-cluster callers can route with (DATAFROST_AUTH_CLUSTER_LOCAL_SUFFIXES)."""
    hostname = (host or "").strip().lower()
    if not hostname.startswith("["):
        hostname = hostname.rsplit(":", 1)[0]
    return any(hostname.endswith(suffix) for suffix in config.auth_cluster_local_suffixes)


def check(call: Call) -> flask.Response:
    """The ext-authz decision for the original request under the /check prefix."""
    request, config = call.request, call.settings
    method = request.method
    try:  # the path as sent, read once (shared.paths): what is checked is what the gateway routes
        original = request_path(request.environ)[len(CHECK_PREFIX) :] or "/"
    except RefusedPath as exc:
        return _deny(Denied(400, str(exc)), method, request.path)
    if not config.auth_enabled or is_cluster_local(request.host, config):
        return flask.Response(status=200)
    try:
        role = gateway_policy().lookup(method, gateway_path(request.host, original, function_names())).role
    except RefusedPath as exc:
        return _deny(Denied(400, str(exc)), method, original)
    except NoRoute as exc:  # refused at the edge, whatever the token: 405 with Allow, or 404
        response = _deny(Denied(405 if exc.allowed else 404, str(exc)), method, original)
        if exc.allowed:
            response.headers["Allow"] = ", ".join(exc.allowed)
        return response
    if role == PUBLIC:
        return flask.Response(status=200)
    try:
        identity = authorize(request.headers, role, call.client(verifier_from_settings))
    except Denied as denied:
        return _deny(denied, method, original)
    response = flask.Response(status=200)
    response.headers["x-datafrost-user"] = header_value(identity.owner)
    response.headers["x-datafrost-subject"] = header_value(identity.subject)
    response.headers["x-datafrost-roles"] = ",".join(sorted(identity.roles & set(KNOWN_ROLES)))
    return response


def _issuer(call: Call) -> DevRealm:
    """The dev realm; 404 when the dev issuer is not in use."""
    if not call.settings.auth_dev_issuer:
        raise HttpError("this platform has no dev issuer (it uses an external identity provider)", 404)
    return call.client(LiveRealm).realm


DISCOVERY = ".well-known/openid-configuration"
CERTS = "protocol/openid-connect/certs"
TOKEN = "protocol/openid-connect/token"


def brute_force_protector(config: Settings) -> BruteForceProtector:
    """This process's failure counts and lockouts (in memory: a restart forgets them)."""
    return BruteForceProtector(config.auth_brute_force)


def realm_endpoint(endpoint: str) -> RouteHandler:
    """The handler of one of Keycloak's realm endpoints (`/realms/<realm>/<endpoint>`)."""

    def handler(call: Call) -> flask.Response:
        realm, guard = _issuer(call), call.client(brute_force_protector)
        return oidc.realm_route(call.request, realm, guard, call.params["realm"], endpoint)

    return handler


def dev_token(call: Call) -> flask.Response:
    _issuer(call)  # 404 without a dev issuer
    return oidc.dev_token(call.request, call.client(LiveRealm), oidc.ThisMachine.of(call.settings.public_url))


SPEC = FunctionSpec(
    name="authz",
    description="Auth: ext-authz check for the gateway, and the dev OpenID issuer",
    routes=(
        # Kourier's check: public itself (it decides; the token it checks is the client's own)
        route(ANY_METHOD, CHECK_PREFIX, PUBLIC, check, serves=Serves.EXT_AUTHZ),
        route(ANY_METHOD, CHECK_PREFIX + "/<path:original>", PUBLIC, check),
        route(
            "GET",
            f"/realms/<realm>/{DISCOVERY}",
            PUBLIC,
            realm_endpoint(DISCOVERY),
            serves=Serves.TOKEN_ISSUER,
        ),
        route("GET", f"/realms/<realm>/{CERTS}", PUBLIC, realm_endpoint(CERTS)),
        route("POST", f"/realms/<realm>/{TOKEN}", PUBLIC, realm_endpoint(TOKEN)),
        # a token without a password: the handler answers callers on this machine that hold the data
        # dir's dev token secret only
        route("POST", "/dev/token", PUBLIC, dev_token),
    ),
    scaling=Scaling(min_scale=1),  # in every request's path: never cold
)
handle = target(SPEC)
