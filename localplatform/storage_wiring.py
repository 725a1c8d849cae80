"""The storage side of `datafrost dev`: buckets created on start, and notifications into the pipeline.

With the local store a `BucketWatcher` plays MinIO's part: every object put, deleted or copied into a
bucket's folder becomes a MinIO-format notification POSTed to the webhook the registry names
(storage-events), the same path a real MinIO takes. With `DATAFROST_STORAGE_AMQP_URL` a
`MinioAmqpSource` consumes MinIO's AMQP target and POSTs each message to the registry's AMQP
notification route, as a RabbitmqSource does on Knative.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import urllib3

from functions.registry import on_gateway, served_by
from functions.spec import Serves
from shared.objectstore.factory import open_store
from shared.settings import Settings

log = logging.getLogger("datafrost.storage")


class _Stoppable(Protocol):
    def stop(self, timeout: float = ...) -> None: ...


class WebhookNotifier:
    """POSTs MinIO envelopes to the storage-events webhook; raising makes the watcher retry."""

    def __init__(self, url: str, token: str | None) -> None:
        self._url = url
        self._headers = {"Content-Type": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._http = urllib3.PoolManager(retries=False)

    def __call__(self, envelope: dict[str, object]) -> None:
        response = self._http.request(
            "POST", self._url, body=json.dumps(envelope).encode(), headers=self._headers, timeout=30
        )
        if response.status >= 300:
            raise RuntimeError(f"storage-events answered {response.status}: {response.data[:200]!r}")


def start_storage(
    config: Settings,
    gateway_url: str,
    data_dir: Path,
    credentials: Callable[[str], dict[str, str]],
    owners: Sequence[str] = (),
) -> list[_Stoppable]:
    """Create the buckets and start whatever turns object changes into events; returns what to stop.
    With the local store each of `owners` gets its folder in the uploads bucket, so a file copied
    into `<data dir>/buckets/uploads/<owner>/` lands where it belongs to that user."""
    store = open_store(config)
    buckets: Sequence[str] = (config.uploads_bucket, config.variants_bucket)
    for bucket in buckets:
        store.ensure_bucket(bucket)
    running: list[_Stoppable] = []
    if config.store == "local":
        for owner in owners:
            (config.local_store_root / config.uploads_bucket / owner).mkdir(parents=True, exist_ok=True)
        from localplatform.bucket_watcher import BucketWatcher

        function, webhook = served_by(Serves.STORAGE_WEBHOOK)
        notify = WebhookNotifier(
            gateway_url + on_gateway(function.name, webhook.path), config.storage_events_token
        )
        watcher = BucketWatcher(
            config.local_store_root, list(buckets), notify, data_dir / "bucket-watcher.db"
        )
        running.append(watcher.start())
    if config.storage_amqp_url:
        from localplatform.minio_amqp import MinioAmqpSource

        source = MinioAmqpSource(
            config.storage_amqp_url,
            config.storage_amqp_exchange,
            config.storage_amqp_routing_key,
            f"datafrost.{config.broker_name}.minio-events",
            gateway_url + _path_of(Serves.STORAGE_AMQP),
            credentials=credentials,
        )
        running.append(source.start())
    return running


def _path_of(part: Serves) -> str:
    """Where on the gateway the function playing `part` takes it (`/storage-events/`, say)."""
    function, route = served_by(part)
    return on_gateway(function.name, route.path)
