"""Which object store a process uses, from its settings (`DATAFROST_STORE`)."""

from __future__ import annotations

from shared.objectstore import ObjectStore
from shared.settings import Settings


def open_store(settings: Settings) -> ObjectStore:
    """The embedded store under the data dir for "local", else MinIO/S3 at the configured URL.

    Imports lazily, so a process on the local store never loads the minio client.
    """
    if settings.store == "local":
        from shared.objectstore.local import LocalObjectStore

        return LocalObjectStore(settings.local_store_root)
    if settings.store.startswith(("http://", "https://")):
        from shared.objectstore.s3 import S3ObjectStore

        return S3ObjectStore(settings.store)
    raise ValueError("DATAFROST_STORE must be 'local' or http(s)://ACCESS_KEY:SECRET_KEY@HOST:PORT")
