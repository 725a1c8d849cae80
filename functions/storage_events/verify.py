"""A notification's claims checked against the store: what is published is what the store holds."""

from __future__ import annotations

import dataclasses

from pipeline.events import ObjectCreated, ObjectRemoved
from shared.objectstore import InvalidKey, ObjectStore


class NotInStore(Exception):
    """The store does not bear the change out (no such object, another eTag, still there)."""


def verified_change(
    change: ObjectCreated | ObjectRemoved, store: ObjectStore
) -> ObjectCreated | ObjectRemoved:
    """The change as the store bears it out; NotInStore names why not.

    A creation is published only when the object exists with the notified eTag, and then with the
    store's size, content type and metadata (not the notification's). A removal is published only
    when the object is gone. Errors reaching the store propagate (the notification is sent again).
    """
    where = f"{change.bucket}/{change.key}"
    try:
        found = store.stat(change.bucket, change.key)
    except InvalidKey as exc:  # a name this store refuses (its own rules beyond check_key)
        raise NotInStore(f"no object can be named so in this store: {exc}") from None
    if isinstance(change, ObjectRemoved):
        if found is not None:
            raise NotInStore(f"object {where} still exists: it was not removed")
        return change
    if found is None:
        raise NotInStore(f"no object {where} in the store")
    if found.etag != change.etag:
        raise NotInStore(f"object {where} has eTag {found.etag!r}, not the notified {change.etag!r}")
    return dataclasses.replace(
        change,
        size=found.size,
        content_type=found.content_type,
        user_metadata=dict(found.user_metadata),
    )
