"""Typed settings, read once from the environment (DATAFROST_* plus Knative's runtime contract)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DEFAULT_MAX_EVENT_BYTES = 1024 * 1024
DEFAULT_MAX_UPLOAD_BYTES = 50 * 1024 * 1024
DEFAULT_MAX_IMAGE_PIXELS = 80_000_000
DEFAULT_MAX_IMAGE_FRAMES = 1000
DEFAULT_VARIANTS = "thumb:256:webp,preview:1024:webp"


@dataclass(frozen=True)
class Settings:
    """Everything a process reads from its environment, in one place."""

    function: str  # K_SERVICE on Knative; the function name locally
    port: int  # PORT
    sink: str | None  # K_SINK: where emitted events go (the broker ingress)
    data_dir: Path
    log_level: str
    max_event_bytes: int
    broker_url: str  # "memory" or amqp://...
    broker_name: str  # names the broker's exchange and queues in RabbitMQ
    amqp_queue_type: str  # classic or quorum
    databases: Mapping[str, str]  # service -> URL, from DATAFROST_<SERVICE>_DB
    store: str  # "local" (the embedded store under the data dir) or http(s)://KEY:SECRET@HOST:PORT
    uploads_bucket: str
    variants_bucket: str
    max_upload_bytes: int
    max_image_pixels: int  # decompression-bomb limit
    max_image_frames: int  # frame-bomb limit for animated formats
    variants: str  # "name:longest_edge:format,..." e.g. "thumb:256:webp,preview:1024:webp"
    storage_events_token: str | None  # MinIO's notify_webhook auth_token, checked when set
    storage_amqp_url: str | None  # consume MinIO's AMQP target when set
    storage_amqp_exchange: str
    storage_amqp_routing_key: str

    def database_url(self, service: str) -> str:
        """The service's own database: DATAFROST_<SERVICE>_DB, else SQLite in the data dir."""
        configured = self.databases.get(service)
        if configured:
            return configured
        path = (self.data_dir / "db" / f"{service}.db").resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"

    @property
    def local_store_root(self) -> Path:
        """Where the embedded object store keeps buckets (one folder per bucket)."""
        return (self.data_dir / "buckets").resolve()


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None


def from_env(env: dict[str, str]) -> Settings:
    """Settings from an explicit environment mapping (tests pass their own)."""
    return Settings(
        function=env.get("K_SERVICE", "datafrost"),
        port=_int(env, "PORT", 8080),
        sink=env.get("K_SINK") or None,
        data_dir=Path(env.get("DATAFROST_DATA_DIR", ".datafrost")),
        log_level=env.get("DATAFROST_LOG_LEVEL", "INFO").upper(),
        max_event_bytes=_int(env, "DATAFROST_MAX_EVENT_BYTES", DEFAULT_MAX_EVENT_BYTES),
        broker_url=env.get("DATAFROST_BROKER", "memory"),
        broker_name=env.get("DATAFROST_BROKER_NAME", "default"),
        amqp_queue_type=env.get("DATAFROST_AMQP_QUEUE_TYPE", "classic"),
        databases={
            name[len("DATAFROST_") : -len("_DB")].lower().replace("_", "-"): value
            for name, value in env.items()
            if name.startswith("DATAFROST_") and name.endswith("_DB") and value
        },
        store=env.get("DATAFROST_STORE", "local"),
        uploads_bucket=env.get("DATAFROST_UPLOADS_BUCKET", "uploads"),
        variants_bucket=env.get("DATAFROST_VARIANTS_BUCKET", "variants"),
        max_upload_bytes=_int(env, "DATAFROST_MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD_BYTES),
        max_image_pixels=_int(env, "DATAFROST_MAX_IMAGE_PIXELS", DEFAULT_MAX_IMAGE_PIXELS),
        max_image_frames=_int(env, "DATAFROST_MAX_IMAGE_FRAMES", DEFAULT_MAX_IMAGE_FRAMES),
        variants=env.get("DATAFROST_VARIANTS", DEFAULT_VARIANTS),
        storage_events_token=env.get("DATAFROST_STORAGE_EVENTS_TOKEN") or None,
        storage_amqp_url=env.get("DATAFROST_STORAGE_AMQP_URL") or None,
        storage_amqp_exchange=env.get("DATAFROST_STORAGE_AMQP_EXCHANGE", "minio"),
        storage_amqp_routing_key=env.get("DATAFROST_STORAGE_AMQP_ROUTING_KEY", "minio.events"),
    )


@lru_cache(maxsize=1)
def settings() -> Settings:
    """The process's settings, read from os.environ on first use."""
    return from_env(dict(os.environ))
