"""Who is calling a function: the bearer token is verified again here, never taken from a bare header.

A function reachable without the gateway (on Knative, by anything in the cluster) must not trust
the gateway's decision alone, so each user-facing route checks the token itself with the same
verifier the `authz` function uses.
"""

from __future__ import annotations

import re

import flask

from shared.auth.identity import Identity
from shared.auth.verify import AuthUnavailable, InvalidToken, bearer_token, default_verifier
from shared.errors import HttpError
from shared.settings import settings

_UNSAFE_SEGMENT = re.compile(r"[^A-Za-z0-9._@+-]")


def authenticate(request: flask.Request, role: str) -> Identity | None:
    """The caller's identity, which must hold `role`; None when auth is off (everything is allowed)."""
    if not settings().auth_enabled:
        return None
    token = bearer_token(request.headers)
    if token is None:
        raise HttpError("authentication required: send Authorization: Bearer <token>", 401)
    try:
        identity = default_verifier().verify(token)
    except InvalidToken as exc:
        raise HttpError(f"invalid token: {exc}", 401) from None
    except AuthUnavailable:
        raise HttpError("cannot verify tokens right now: the identity provider is unreachable", 503) from None
    if not identity.can(role):
        raise HttpError(f"this needs the {role} role", 403)
    return identity


def owner_segment(identity: Identity) -> str:
    """The caller's key prefix in the uploads bucket: an image belongs to the first segment of its key."""
    segment = _UNSAFE_SEGMENT.sub("_", identity.owner)
    return segment if segment.strip(".") else f"user-{identity.subject}"


def owner_scope(identity: Identity | None) -> str | None:
    """Whose images a caller sees: its own, or everyone's for admin (and with auth off)."""
    if identity is None or identity.is_admin:
        return None
    return owner_segment(identity)
