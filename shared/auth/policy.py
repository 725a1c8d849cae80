"""Which role each route needs, as data: the gateway's path form `/<function>/<rest>`.

Public (no token): `PUBLIC_ROUTES`.

| method | path | needs |
| --- | --- | --- |
| GET, HEAD | `/healthz`, `/<function>/healthz`, `/<function>/readyz` | public |
| GET, HEAD | `/authz/realms/<realm>/.well-known/openid-configuration` | public |
| GET, HEAD | `/authz/realms/<realm>/protocol/openid-connect/certs` | public |
| POST | `/authz/realms/<realm>/protocol/openid-connect/token` | public (it checks credentials) |
| POST | `/authz/dev/token` | public (the function allows loopback callers only) |
| GET, HEAD | `/web`, `/web/...` (the web page's static files) | public |
| POST, HEAD | `/storage-events`, `/storage-events/` | public (MinIO's webhook: see below) |
| PUT | `/upload/put/<key>` | public (a presigned upload: the upload function checks its signature) |
| any | `/brokers/default/triggers[/...]` | admin |
| POST | `/brokers/default` (broker ingress) | service |
| POST | `/storage-events/rabbitmq` (MinIO's AMQP notifications, from a RabbitmqSource) | service |
| POST | `/dead-letters`, `/dead-letters/` (dead letters delivered by the broker) | service |
| any | `/dead-letters/...` (list, show, replay, delete) | admin |
| POST | `/upload`, `/upload/`, `/upload/presign` | editor |
| DELETE | `/catalog/...` | editor |
| POST | `/<function>`, `/<function>/` (a function's event endpoint) | service |
| GET, HEAD | `/metrics`, `/functions`, and any other path | viewer |
| any other method | any other path | admin (a write no rule declares is refused to all but admins) |

`/storage-events` stays public because MinIO's webhook target sends a static token, never a JWT:
the function checks that token itself (DATAFROST_STORAGE_EVENTS_TOKEN; set it when auth is on).

First matching rule wins. Roles are hierarchical (admin ⊇ editor ⊇ viewer, admin ⊇ service: see
`shared.auth.identity`), so "needs editor" admits editors and admins.

Paths are normalised before matching: repeated slashes collapse (the gateway and the functions ignore
empty segments too); a `.` or `..` segment is refused outright (`RefusedPath`). With host routing
(`Host: catalog.localhost`, or Knative's `catalog.<namespace>.<domain>`), `gateway_path` puts the
function's name in front of the path first.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from shared.auth.identity import ADMIN, EDITOR, SERVICE, VIEWER

READS = frozenset({"GET", "HEAD"})
ANY = frozenset({"*"})
GATEWAY_PATHS = ("healthz", "metrics", "functions", "brokers", "web")  # the gateway's own, not functions
_FUNCTION = rf"(?!(?:{'|'.join(GATEWAY_PATHS)})(?:/|$))[a-z][-a-z0-9]*"
_REALM = r"[^/]+"


class RefusedPath(ValueError):
    """A path no rule should be asked about (dot segments): refused whatever the token."""


@dataclass(frozen=True)
class Route:
    """Methods (or ANY) and a path pattern that must match the whole normalised path."""

    methods: frozenset[str]
    pattern: str

    def matches(self, method: str, path: str) -> bool:
        method_ok = "*" in self.methods or method in self.methods
        return method_ok and re.fullmatch(self.pattern, path) is not None


def _route(methods: Collection[str], pattern: str) -> Route:
    return Route(frozenset(methods), pattern)


PUBLIC_ROUTES: tuple[Route, ...] = (
    _route(READS, r"/healthz"),
    _route(READS, rf"/{_FUNCTION}/(healthz|readyz)"),
    _route(READS, rf"/authz/realms/{_REALM}/\.well-known/openid-configuration"),
    _route(READS, rf"/authz/realms/{_REALM}/protocol/openid-connect/certs"),
    _route({"POST"}, rf"/authz/realms/{_REALM}/protocol/openid-connect/token"),
    _route({"POST"}, r"/authz/dev/token"),
    _route(READS, r"/web(/.*)?"),
    _route({"POST", "HEAD"}, r"/storage-events/?"),
    _route({"PUT"}, r"/upload/put/.+"),  # a presigned upload: its signature is the credential
)

# (route, role), first match wins; the last two rules catch everything.
ROLE_RULES: tuple[tuple[Route, str], ...] = (
    (_route(ANY, r"/brokers/default/triggers(/.*)?"), ADMIN),
    (_route({"POST"}, r"/brokers/default/?"), SERVICE),
    (_route({"POST"}, r"/storage-events/rabbitmq/?"), SERVICE),
    (_route({"POST"}, r"/dead-letters/?"), SERVICE),
    (_route(ANY, r"/dead-letters(/.*)?"), ADMIN),
    (_route({"POST"}, r"/upload(/|/presign/?)?"), EDITOR),
    (_route({"DELETE"}, r"/catalog/.+"), EDITOR),
    (_route({"POST"}, rf"/{_FUNCTION}/?"), SERVICE),
    (_route(READS, r"/.*"), VIEWER),
    (_route(ANY, r"/.*"), ADMIN),
)


def normalize_path(path: str) -> str:
    """`path` with repeated slashes collapsed; raises RefusedPath for `.` or `..` segments."""
    path = "/" + path.lstrip("/")
    segments = path.split("/")
    if any(segment in (".", "..") for segment in segments):
        raise RefusedPath("paths with '.' or '..' segments are refused")
    return re.sub(r"/{2,}", "/", path)


def host_function(host: str | None, functions: Collection[str]) -> str | None:
    """The function a Host names by host routing (`<function>.<anything>[:port]`), else None.

    The one parser of host routing: the gateway routes with it and authz checks with it, so what is
    checked is what is served.
    """
    hostname = (host or "").strip().lower()
    if hostname.startswith("["):  # an IPv6 literal names no function
        return None
    label = hostname.rsplit(":", 1)[0].split(".", 1)[0]
    return label if "." in hostname and label in functions else None


def gateway_path(host: str | None, path: str, functions: Collection[str]) -> str:
    """The gateway's path form of a request: host routing (`<function>.<anything>`) becomes a prefix."""
    name = host_function(host, functions)
    return path if name is None else f"/{name}/{path.lstrip('/')}"


def is_public(method: str, path: str) -> bool:
    method = method.upper()
    path = normalize_path(path)
    return any(route.matches(method, path) for route in PUBLIC_ROUTES)


def required_role(method: str, path: str) -> str | None:
    """The role a request needs, or None for a public route. Raises RefusedPath (see normalize_path)."""
    method = method.upper()
    path = normalize_path(path)
    if any(route.matches(method, path) for route in PUBLIC_ROUTES):
        return None
    return next(role for route, role in ROLE_RULES if route.matches(method, path))
