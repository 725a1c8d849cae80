"""Typed settings, read once from the environment (DATAFROST_* plus Knative's runtime contract).

There is no global: each process builds its settings once (`from_env`) and hands them on. A function
gets them from the runtime in its `Context`; `datafrost dev` builds them from its flags.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from shared.rate_limit import RateLimit

DEFAULT_MAX_EVENT_BYTES = 1024 * 1024
DEFAULT_MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MULTIPART_ALLOWANCE = 64 * 1024  # a multipart upload's boundaries and part headers, beyond the file
DEFAULT_MAX_IMAGE_PIXELS = 80_000_000
DEFAULT_MAX_IMAGE_FRAMES = 1000
MIB = 1024 * 1024
# What an image function may spend on one image: its Knative memory limit (functions.spec.Resources,
# 512Mi) minus what the process holds before any image (about 60 MiB) and the allocator's slack.
DEFAULT_IMAGE_MEMORY_BYTES = 512 * MIB - 128 * MIB
DEFAULT_VARIANTS = "thumb:256:webp,preview:1024:webp"
MAX_AUTH_LEEWAY_SECONDS = 30
# storage-events' notification rate per client (MinIO sends one notification per object change)
DEFAULT_STORAGE_EVENTS_PER_MINUTE = 6000
DEFAULT_STORAGE_EVENTS_BURST = 200
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


@dataclass(frozen=True)
class BruteForcePolicy:
    """The dev issuer's brute-force detection: Keycloak's realm settings, with Keycloak's defaults
    (DATAFROST_AUTH_BRUTE_FORCE_*; Keycloak's names in brackets)."""

    enabled: bool = True  # DATAFROST_AUTH_BRUTE_FORCE (Keycloak: bruteForceProtected; off there)
    failure_factor: int = 30  # ..._FAILURE_FACTOR [failureFactor]: failures before a lockout
    wait_increment_seconds: int = 60  # ..._WAIT_INCREMENT_SECONDS [waitIncrementSeconds]
    max_wait_seconds: int = 900  # ..._MAX_WAIT_SECONDS [maxFailureWaitSeconds]
    failure_reset_seconds: int = 12 * 3600  # ..._FAILURE_RESET_SECONDS [maxDeltaTimeSeconds]
    quick_login_check_milliseconds: int = (
        1000  # ..._QUICK_LOGIN_CHECK_MILLISECONDS [quickLoginCheckMilliSeconds]
    )
    minimum_quick_login_wait_seconds: int = (
        60  # ..._MINIMUM_QUICK_LOGIN_WAIT_SECONDS [minimumQuickLoginWaitSeconds]
    )
    permanent_lockout: bool = False  # ..._PERMANENT_LOCKOUT [permanentLockout]: until authz restarts
    strategy: str = "multiple"  # ..._STRATEGY [bruteForceStrategy]: "multiple" or "linear"
    # ..._ADDRESS_FAILURE_FACTOR (no Keycloak setting: Keycloak counts per user only): failures from one
    # client address, over every user and client, before that address is locked out the same way
    address_failure_factor: int = 100


@dataclass(frozen=True)
class ReconcilePolicy:
    """The catalog's reconciler and `datafrost dev`'s notification probe (DATAFROST_RECONCILE_*)."""

    interval_seconds: int = 300  # DATAFROST_RECONCILE_INTERVAL: `datafrost dev` pings a pass (0: never)
    grace_seconds: int = 120  # ..._GRACE_SECONDS: an object younger than this may still be notified
    stuck_seconds: int = 900  # ..._STUCK_SECONDS: `processing` this long (since its last write) is stuck
    max_repairs: int = 3  # ..._MAX_REPAIRS: re-emits of a stuck record before it is marked rejected
    max_emits: int = 500  # ..._MAX_EMITS: events one pass sends at most (the rest on the next pass)
    batch: int = 50  # ..._BATCH: events per request to the broker
    probe_seconds: int = 30  # DATAFROST_STORAGE_PROBE_SECONDS: wait for a probe's notification (0: no probe)


@dataclass(frozen=True)
class Settings:
    """Everything a process reads from its environment, in one place."""

    function: str  # K_SERVICE on Knative; the function name locally
    sink: str | None  # K_SINK: where emitted events go (the broker ingress)
    data_dir: Path
    log_level: str
    max_event_bytes: int
    broker_url: str  # DATAFROST_BROKER (`datafrost dev --broker`): "local" (durable), "memory" or amqp://...
    broker_name: str  # names the broker's exchange and queues in RabbitMQ, its file in the data dir locally
    amqp_queue_type: str  # classic or quorum
    databases: Mapping[str, str]  # service -> URL, from DATAFROST_<SERVICE>_DB
    store: str  # "local" (the embedded store under the data dir) or http(s)://KEY:SECRET@HOST:PORT
    uploads_bucket: str
    variants_bucket: str
    max_upload_bytes: int
    max_image_pixels: int  # decompression-bomb limit
    max_image_frames: int  # frame-bomb limit for animated formats
    image_memory_bytes: int  # memory one image may take to decode and process (a memory-bomb limit)
    variants: str  # "name:longest_edge:format,..." e.g. "thumb:256:webp,preview:1024:webp"
    storage_events_token: str | None  # MinIO's notify_webhook auth_token, checked when set
    presign_secret: str | None = field(repr=False)  # signs presigned upload URLs of the local store
    public_url: str | None  # the gateway clients use (DATAFROST_PUBLIC_URL), for URLs handed to them
    storage_amqp_url: str | None  # consume MinIO's AMQP target when set
    storage_amqp_exchange: str
    storage_amqp_routing_key: str
    # Auth (shared/auth). Defaults here so a Settings built by hand still works.
    auth_enabled: bool = True  # DATAFROST_AUTH: "on" (default) or "off"
    # DATAFROST_AUTH_ISSUER: the realm URL (http://127.0.0.1:8080/authz/realms/datafrost, or a real
    # Keycloak's https://kc/realms/datafrost); None: the dev issuer under the local gateway.
    auth_issuer: str | None = None
    # DATAFROST_AUTH_JWKS_URL: where the keys are fetched; default <issuer>/protocol/openid-connect/certs
    auth_jwks_url: str | None = None
    auth_audience: str = "datafrost"  # DATAFROST_AUTH_AUDIENCE
    auth_client: str = "datafrost"  # DATAFROST_AUTH_CLIENT: whose resource_access roles count
    auth_leeway_seconds: int = MAX_AUTH_LEEWAY_SECONDS  # DATAFROST_AUTH_LEEWAY_SECONDS, 0..30
    # DATAFROST_AUTH_DEV_ISSUER: the authz function serves the dev issuer ("on"/"off"). `datafrost dev`
    # decides once and sets it for every process; unset (a process started on its own), it is on when the
    # issuer is unset or is <loopback gateway>/authz/realms/<realm>, off for any other issuer.
    auth_dev_issuer: bool = True
    # The client-credentials client internal components use; the secret is never logged (nor in repr).
    auth_service_client_id: str | None = None  # DATAFROST_AUTH_SERVICE_CLIENT_ID
    auth_service_client_secret: str | None = field(default=None, repr=False)  # ..._SECRET
    # DATAFROST_AUTH_CLUSTER_LOCAL_SUFFIXES (comma-separated, e.g. ".svc.cluster.local,.svc"): requests
    # whose Host ends so are in-cluster traffic (the broker delivering, a RabbitmqSource) and pass the
    # ext-authz check without a token. Only for Kourier: its public listener has no route for such
    # hosts. Empty (the default) trusts no host; the local gateway has its own cluster-local listener.
    auth_cluster_local_suffixes: tuple[str, ...] = ()
    # DATAFROST_AUTH_SERVICE_ROUTES: how a function checks its routes that need the service role (its
    # event endpoint, /metrics, ...): "token" (default: a service-role token, as `datafrost dev`'s
    # broker sends) or "network" (the deployment lets only internal callers reach them: on Knative
    # until deliveries carry tokens, cluster-local visibility and NetworkPolicies decide).
    auth_service_routes: str = "token"
    # OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT: export spans (shared.otel) when
    # set and the `otel` extra is installed; the exporter reads the rest of OTel's own OTEL_* settings.
    otel_endpoint: str | None = None
    auth_brute_force: BruteForcePolicy = field(default_factory=BruteForcePolicy)
    # DATAFROST_STORAGE_EVENTS_RATE_PER_MINUTE and _BURST: notifications storage-events takes from
    # one client (token bucket; beyond, 429 with Retry-After, which MinIO retries)
    storage_events_rate: RateLimit = field(
        default_factory=lambda: RateLimit(DEFAULT_STORAGE_EVENTS_PER_MINUTE, DEFAULT_STORAGE_EVENTS_BURST)
    )
    reconcile: ReconcilePolicy = field(default_factory=ReconcilePolicy)

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


def database_variable(service: str) -> str:
    """The variable that names a service's own database: DATAFROST_<SERVICE>_DB (`-` becomes `_`)."""
    return f"DATAFROST_{service.upper().replace('-', '_')}_DB"


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None


def _switch(env: dict[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("on", "true", "1", "yes"):
        return True
    if raw in ("off", "false", "0", "no"):
        return False
    raise ValueError(f"{name} must be on or off, got {raw!r}")


def _choice(env: dict[str, str], name: str, choices: tuple[str, ...]) -> str:
    """One of `choices` (the first is the default)."""
    raw = env.get(name, "").strip().lower() or choices[0]
    if raw not in choices:
        raise ValueError(f"{name} must be {' or '.join(choices)}, got {raw!r}")
    return raw


def _suffixes(raw: str) -> tuple[str, ...]:
    """Host suffixes, lower-case, each starting with a dot (so ".svc" never matches "evil-svc")."""
    parts = [p.strip().lower() for p in raw.split(",") if p.strip()]
    return tuple(p if p.startswith(".") else "." + p for p in parts)


def _brute_force(env: dict[str, str]) -> BruteForcePolicy:
    """DATAFROST_AUTH_BRUTE_FORCE_*: Keycloak's defaults where unset."""
    default = BruteForcePolicy()
    prefix = "DATAFROST_AUTH_BRUTE_FORCE_"

    def count(name: str, value: int, least: int = 0) -> int:
        number = _int(env, prefix + name, value)
        if number < least:
            raise ValueError(f"{prefix}{name} must be at least {least}, got {number}")
        return number

    return BruteForcePolicy(
        enabled=_switch(env, "DATAFROST_AUTH_BRUTE_FORCE", default.enabled),
        failure_factor=count("FAILURE_FACTOR", default.failure_factor, least=1),
        wait_increment_seconds=count("WAIT_INCREMENT_SECONDS", default.wait_increment_seconds),
        max_wait_seconds=count("MAX_WAIT_SECONDS", default.max_wait_seconds),
        failure_reset_seconds=count("FAILURE_RESET_SECONDS", default.failure_reset_seconds),
        quick_login_check_milliseconds=count(
            "QUICK_LOGIN_CHECK_MILLISECONDS", default.quick_login_check_milliseconds
        ),
        minimum_quick_login_wait_seconds=count(
            "MINIMUM_QUICK_LOGIN_WAIT_SECONDS", default.minimum_quick_login_wait_seconds
        ),
        permanent_lockout=_switch(env, prefix + "PERMANENT_LOCKOUT", default.permanent_lockout),
        strategy=_choice(env, prefix + "STRATEGY", ("multiple", "linear")),
        address_failure_factor=count("ADDRESS_FAILURE_FACTOR", default.address_failure_factor, least=1),
    )


def _reconcile(env: dict[str, str]) -> ReconcilePolicy:
    default = ReconcilePolicy()

    def count(name: str, value: int, least: int = 0) -> int:
        return max(least, _int(env, name, value))

    return ReconcilePolicy(
        interval_seconds=count("DATAFROST_RECONCILE_INTERVAL", default.interval_seconds),
        grace_seconds=count("DATAFROST_RECONCILE_GRACE_SECONDS", default.grace_seconds),
        stuck_seconds=count("DATAFROST_RECONCILE_STUCK_SECONDS", default.stuck_seconds, 1),
        max_repairs=count("DATAFROST_RECONCILE_MAX_REPAIRS", default.max_repairs),
        max_emits=count("DATAFROST_RECONCILE_MAX_EMITS", default.max_emits, 1),
        batch=count("DATAFROST_RECONCILE_BATCH", default.batch, 1),
        probe_seconds=count("DATAFROST_STORAGE_PROBE_SECONDS", default.probe_seconds),
    )


def _dev_issuer_default(issuer: str | None) -> bool:
    """The guess when DATAFROST_AUTH_DEV_ISSUER is unset: the dev issuer is in use when no issuer is set,
    or the issuer is the authz function under a local gateway (a loopback host, path
    /authz/realms/<realm>); any other issuer (a real Keycloak, even on localhost) is not the dev issuer.
    `datafrost dev` never leaves its processes to guess: it sets DATAFROST_AUTH_DEV_ISSUER for them."""
    if issuer is None:
        return True
    parts = urlsplit(issuer)
    return (parts.hostname or "") in _LOOPBACK_HOSTS and re.fullmatch(
        r"/authz/realms/[^/]+/?", parts.path
    ) is not None


def from_env(env: dict[str, str]) -> Settings:
    """Settings from an explicit environment mapping (tests pass their own)."""
    return Settings(
        function=env.get("K_SERVICE", "datafrost"),
        sink=env.get("K_SINK") or None,
        data_dir=Path(env.get("DATAFROST_DATA_DIR", ".datafrost")),
        log_level=env.get("DATAFROST_LOG_LEVEL", "INFO").upper(),
        max_event_bytes=_int(env, "DATAFROST_MAX_EVENT_BYTES", DEFAULT_MAX_EVENT_BYTES),
        broker_url=env.get("DATAFROST_BROKER", "local"),
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
        image_memory_bytes=_int(env, "DATAFROST_IMAGE_MEMORY_BYTES", DEFAULT_IMAGE_MEMORY_BYTES),
        variants=env.get("DATAFROST_VARIANTS", DEFAULT_VARIANTS),
        storage_events_token=env.get("DATAFROST_STORAGE_EVENTS_TOKEN") or None,
        storage_events_rate=RateLimit(
            _int(env, "DATAFROST_STORAGE_EVENTS_RATE_PER_MINUTE", DEFAULT_STORAGE_EVENTS_PER_MINUTE),
            _int(env, "DATAFROST_STORAGE_EVENTS_BURST", DEFAULT_STORAGE_EVENTS_BURST),
        ),
        presign_secret=env.get("DATAFROST_PRESIGN_SECRET") or None,
        public_url=(env.get("DATAFROST_PUBLIC_URL") or "").rstrip("/") or None,
        storage_amqp_url=env.get("DATAFROST_STORAGE_AMQP_URL") or None,
        storage_amqp_exchange=env.get("DATAFROST_STORAGE_AMQP_EXCHANGE", "minio"),
        storage_amqp_routing_key=env.get("DATAFROST_STORAGE_AMQP_ROUTING_KEY", "minio.events"),
        auth_enabled=_switch(env, "DATAFROST_AUTH", True),
        auth_issuer=(env.get("DATAFROST_AUTH_ISSUER") or "").rstrip("/") or None,
        auth_jwks_url=env.get("DATAFROST_AUTH_JWKS_URL") or None,
        auth_audience=env.get("DATAFROST_AUTH_AUDIENCE") or "datafrost",
        auth_client=env.get("DATAFROST_AUTH_CLIENT") or "datafrost",
        auth_leeway_seconds=max(
            0,
            min(_int(env, "DATAFROST_AUTH_LEEWAY_SECONDS", MAX_AUTH_LEEWAY_SECONDS), MAX_AUTH_LEEWAY_SECONDS),
        ),
        auth_dev_issuer=_switch(
            env, "DATAFROST_AUTH_DEV_ISSUER", _dev_issuer_default(env.get("DATAFROST_AUTH_ISSUER") or None)
        ),
        auth_service_client_id=env.get("DATAFROST_AUTH_SERVICE_CLIENT_ID") or None,
        auth_service_client_secret=env.get("DATAFROST_AUTH_SERVICE_CLIENT_SECRET") or None,
        auth_cluster_local_suffixes=_suffixes(env.get("DATAFROST_AUTH_CLUSTER_LOCAL_SUFFIXES", "")),
        auth_service_routes=_choice(env, "DATAFROST_AUTH_SERVICE_ROUTES", ("token", "network")),
        otel_endpoint=env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or None,
        auth_brute_force=_brute_force(env),
        reconcile=_reconcile(env),
    )
