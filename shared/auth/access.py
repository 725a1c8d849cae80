"""The one access decision: does this request's bearer token hold the role a route needs?

`authz` (the gateway's check) and the function runtime (every function checks its own routes) both
call `authorize`, so the gateway and the function can never disagree on who may do what.
"""

from __future__ import annotations

from shared.auth.identity import Identity
from shared.auth.jwks import AuthUnavailable
from shared.auth.verify import HeaderItems, InvalidToken, TokenVerifier, bearer_token

REALM = "datafrost"


class Denied(Exception):
    """The request may not pass: `status` (401, 403 or 503) and a reason that echoes no credential."""

    def __init__(self, status: int, reason: str, *, bad_token: bool = False, user: str | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.bad_token = bad_token
        self.user = user

    @property
    def challenge(self) -> str | None:
        """The WWW-Authenticate value a 401 carries (RFC 6750), else None."""
        if self.status != 401:
            return None
        value = f'Bearer realm="{REALM}"'
        if self.bad_token:
            value += f', error="invalid_token", error_description="{self.reason}"'
        return value


def authorize(headers: HeaderItems, role: str, verifier: TokenVerifier) -> Identity:
    """The caller the bearer token names, which must hold `role` (or a role above it); else Denied."""
    token = bearer_token(headers)
    if token is None:
        raise Denied(401, "authentication required: send Authorization: Bearer <token>")
    try:
        identity = verifier.verify(token)
    except InvalidToken as exc:
        raise Denied(401, exc.reason, bad_token=True) from None
    except AuthUnavailable:
        raise Denied(503, "the identity provider is unavailable; try again shortly") from None
    if not identity.can(role):
        raise Denied(403, f"the {role} role is required", user=identity.owner)
    return identity
