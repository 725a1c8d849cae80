"""Who a verified token speaks for: subject, username, roles and the client it was issued to.

Roles follow Keycloak's claim layout: `realm_access.roles` plus `resource_access.<client>.roles` of
the one client whose roles count (DATAFROST_AUTH_CLIENT). The platform's roles form a hierarchy:
admin ⊇ editor ⊇ viewer, and admin also implies service (an admin may inject events by hand, as the
dead-letter replay already does); service (internal components) implies nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

VIEWER = "viewer"
EDITOR = "editor"
ADMIN = "admin"
SERVICE = "service"
KNOWN_ROLES = (VIEWER, EDITOR, ADMIN, SERVICE)

# role held -> every role it grants (itself included)
_GRANTS: Mapping[str, frozenset[str]] = {
    VIEWER: frozenset({VIEWER}),
    EDITOR: frozenset({EDITOR, VIEWER}),
    ADMIN: frozenset({ADMIN, EDITOR, VIEWER, SERVICE}),
    SERVICE: frozenset({SERVICE}),
}


def _string_list(value: Any) -> frozenset[str]:
    if not isinstance(value, list):
        return frozenset()
    return frozenset(item for item in value if isinstance(item, str) and item)


def roles_from_claims(claims: Mapping[str, Any], client: str) -> frozenset[str]:
    """realm_access.roles plus resource_access[client].roles; anything malformed counts as no roles."""
    realm = claims.get("realm_access")
    resources = claims.get("resource_access")
    roles = _string_list(realm.get("roles")) if isinstance(realm, Mapping) else frozenset()
    if isinstance(resources, Mapping):
        own = resources.get(client)
        if isinstance(own, Mapping):
            roles |= _string_list(own.get("roles"))
    return roles


@dataclass(frozen=True)
class Identity:
    """The caller a verified token names."""

    subject: str  # sub: stable id
    username: str | None  # preferred_username
    roles: frozenset[str]
    client: str | None  # azp: the client the token was issued to

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any], client: str) -> Identity:
        """From verified claims (sub must be a non-empty string: the verifier checks it)."""
        username = claims.get("preferred_username")
        azp = claims.get("azp")
        return cls(
            subject=str(claims["sub"]),
            username=username if isinstance(username, str) and username else None,
            roles=roles_from_claims(claims, client),
            client=azp if isinstance(azp, str) and azp else None,
        )

    @property
    def owner(self) -> str:
        """Whose data this caller acts on: preferred_username, else sub."""
        return self.username or self.subject

    def has_role(self, role: str) -> bool:
        """Holds `role` itself (no hierarchy)."""
        return role in self.roles

    def can(self, role: str) -> bool:
        """Holds `role` or a role above it (admin ⊇ editor ⊇ viewer; admin ⊇ service)."""
        return any(role in _GRANTS.get(held, frozenset({held})) for held in self.roles)

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.roles

    @property
    def is_service(self) -> bool:
        """An internal component (the client-credentials client's role "service")."""
        return SERVICE in self.roles
