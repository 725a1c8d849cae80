"""Whose an image is: the first segment of its key (`alice/photo.jpg` belongs to `alice`).

The one place ownership is computed: inspect puts it in image.analyzed, the catalog keeps it and
scopes every read by it, upload makes keys under the caller's segment.
"""

from __future__ import annotations

import re

from pipeline.events import is_reserved_key
from shared.auth.identity import Identity

ANONYMOUS = "anonymous"  # the owner of a key with no prefix, and of uploads with auth off
_UNSAFE_SEGMENT = re.compile(r"[^A-Za-z0-9._@+-]")


def owner_of(key: str) -> str:
    """The owner of the object at `key`: its first segment, else ANONYMOUS."""
    head, sep, _ = key.partition("/")
    return head if sep and head else ANONYMOUS


def owner_segment(identity: Identity | None) -> str:
    """The caller's key prefix in the uploads bucket (ANONYMOUS with auth off)."""
    if identity is None:
        return ANONYMOUS
    segment = _UNSAFE_SEGMENT.sub("_", identity.owner)
    if not segment.strip(".") or is_reserved_key(segment + "/"):  # DataFrost's own prefix is no owner's
        return f"user-{identity.subject}"
    return segment


def owner_scope(identity: Identity | None) -> str | None:
    """Whose images a caller sees: its own, or everyone's (None) for admin and with auth off."""
    if identity is None or identity.is_admin:
        return None
    return owner_segment(identity)
