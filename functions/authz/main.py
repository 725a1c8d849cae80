"""authz: the platform's auth service: Kourier's HTTP ext-authz check, and the dev issuer.

Consumes / emits: no events (kind http).

Ext-authz (`/check/<original path>`): Kourier, configured with KOURIER_EXTAUTHZ_PROTOCOL=http and
KOURIER_EXTAUTHZ_PATHPREFIX=/check, sends each client request's method and path under that prefix,
with only Host, Authorization and Content-Length (and at most the first 8 KiB of the body, which is
never read). The answer:

- 200: allowed, because the route is public (`shared.auth.policy`), auth is off (DATAFROST_AUTH=off),
  the Host is cluster-local (DATAFROST_AUTH_CLUSTER_LOCAL_SUFFIXES, set on Knative: Kourier's public
  listener has no route for such a host, so only in-cluster callers get through with it; user-facing
  routes still verify the token in the function), or the bearer token verifies and its roles cover
  the route. With a token, the 200 carries `x-datafrost-user` (preferred_username, else sub;
  percent-encoded when not plain ASCII), `x-datafrost-subject` and `x-datafrost-roles`
  (the platform roles held, comma-separated: viewer, editor, admin, service) for the gateway to
  forward upstream;
- 401 `{"error": reason}` + `WWW-Authenticate: Bearer ...`: no token, or a token that does not verify;
- 403: the token is valid but its roles do not cover the route;
- 400: a path with `.`/`..` segments; 503: the identity provider's keys are unavailable (fail closed).

Dev issuer (Keycloak's protocol, see `functions.authz.oidc`; the gateway maps `/authz/<rest>` here):
`GET /realms/<realm>/.well-known/openid-configuration`, `GET /realms/<realm>/protocol/openid-connect/certs`,
`POST /realms/<realm>/protocol/openid-connect/token`, `POST /dev/token`. Served while the dev issuer
is in use (DATAFROST_AUTH_DEV_ISSUER), 404 otherwise; its realm lives in `<data_dir>/auth/`.

Nothing here logs or returns a token, a password, a client secret or an Authorization header.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

import flask

from functions.authz import oidc
from functions.runtime import error_response, http_function
from functions.spec import FunctionSpec, Scaling
from shared.auth.dev_issuer import DevRealm, ensure_dev_realm
from shared.auth.identity import KNOWN_ROLES
from shared.auth.policy import RefusedPath, gateway_path, required_role
from shared.auth.verify import AuthUnavailable, InvalidToken, bearer_token, default_verifier, issuer_of
from shared.lazy import once
from shared.logging import log_fields
from shared.settings import settings

SPEC = FunctionSpec(
    name="authz",
    kind="http",
    description="Auth: ext-authz check for the gateway, and the dev OpenID issuer",
    scaling=Scaling(min_scale=1),  # in every request's path: never cold
)
CHECK_PREFIX = "/check"
log = logging.getLogger("datafrost.authz")


@once
def dev_realm() -> DevRealm:
    config = settings()
    return ensure_dev_realm(
        config.data_dir, issuer_of(config), audience=config.auth_audience, client=config.auth_client
    )


@once
def function_names() -> frozenset[str]:
    """Every function's name, for host routing (`<function>.<domain>`)."""
    from functions.registry import all_specs

    return frozenset(spec.name for spec in all_specs())


def _deny(
    status: int, reason: str, method: str, path: str, *, bad_token: bool = False, user: str | None = None
) -> flask.Response:
    fields: dict[str, object] = {"method": method, "path": path[:200], "status": status, "reason": reason}
    if user is not None:
        fields["user"] = user
    log.info("request denied", extra=log_fields(**fields))
    response = error_response(reason, status)
    if status == 401:
        challenge = 'Bearer realm="datafrost"'
        if bad_token:
            challenge += f', error="invalid_token", error_description="{reason}"'
        response.headers["WWW-Authenticate"] = challenge
    return response


def header_value(text: str) -> str:
    """Percent-encoded (RFC 3986) where not plain printable ASCII: usernames may be any Unicode."""
    return quote(text, safe="@._-+~!$&'()*,;=:")


def is_cluster_local(host: str | None) -> bool:
    """A Host only in-cluster callers can route with (DATAFROST_AUTH_CLUSTER_LOCAL_SUFFIXES)."""
    hostname = (host or "").strip().lower()
    if not hostname.startswith("["):
        hostname = hostname.rsplit(":", 1)[0]
    return any(hostname.endswith(suffix) for suffix in settings().auth_cluster_local_suffixes)


def check(request: flask.Request) -> flask.Response:
    """The ext-authz decision for the original request under the /check prefix."""
    method = request.method
    original = request.path[len(CHECK_PREFIX) :] or "/"
    if not settings().auth_enabled or is_cluster_local(request.host):
        return flask.Response(status=200)
    try:
        role = required_role(method, gateway_path(request.host, original, function_names()))
    except RefusedPath as exc:
        return _deny(400, str(exc), method, original)
    if role is None:
        return flask.Response(status=200)
    token = bearer_token(request.headers)
    if token is None:
        return _deny(401, "authentication required: send Authorization: Bearer <token>", method, original)
    try:
        identity = default_verifier().verify(token)
    except InvalidToken as exc:
        return _deny(401, exc.reason, method, original, bad_token=True)
    except AuthUnavailable:
        return _deny(503, "the identity provider is unavailable; try again shortly", method, original)
    if not identity.can(role):
        return _deny(403, f"the {role} role is required", method, original, user=identity.owner)
    response = flask.Response(status=200)
    response.headers["x-datafrost-user"] = header_value(identity.owner)
    response.headers["x-datafrost-subject"] = header_value(identity.subject)
    response.headers["x-datafrost-roles"] = ",".join(sorted(identity.roles & set(KNOWN_ROLES)))
    return response


def issuer(request: flask.Request) -> flask.Response:
    """The dev issuer's routes; 404 when the dev issuer is not in use."""
    if not settings().auth_dev_issuer:
        return error_response("this platform has no dev issuer (it uses an external identity provider)", 404)
    parts = request.path.strip("/").split("/", 2)
    if parts[0] == "dev" and request.path.rstrip("/") == "/dev/token":
        return oidc.dev_token(request, dev_realm())
    if parts[0] == "realms" and len(parts) == 3:
        return oidc.realm_route(request, dev_realm(), parts[1], parts[2])
    return error_response(f"no route for {request.method} {request.path}", 404)


def on_request(request: flask.Request) -> flask.Response:
    if request.path == CHECK_PREFIX or request.path.startswith(CHECK_PREFIX + "/"):
        return check(request)
    if request.path.startswith(("/realms/", "/dev/")):
        return issuer(request)
    return error_response(f"no route for {request.method} {request.path}", 404)


handle = http_function(SPEC, on_request)
