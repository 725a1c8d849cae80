"""How a function declares itself: the whole contract the runtime, the gateway policy, the local runner
and the Knative manifests read.

A function's `SPEC` says what it consumes and emits, its triggers, its HTTP routes (method, path
pattern, the role each needs or PUBLIC, the handler), whether it owns a database or posts events
itself, its scaling, resources and visibility. Nothing else names these facts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from eventing.trigger import DeliverySpec
from shared.auth.identity import KNOWN_ROLES, SERVICE
from shared.settings import MULTIPART_ALLOWANCE

if TYPE_CHECKING:
    import flask

    from eventing.cloudevent import CloudEvent
    from functions.context import Call, Context
    from shared.settings import Settings

FunctionKind = Literal["http", "cloudevent"]
Visibility = Literal["public", "cluster-local"]
FUNCTION_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,40}[a-z0-9])?$")
PROJECT_ROOT = Path(__file__).resolve().parent.parent
TARGET = "handle"  # every function module exposes its functions-framework target under this name
PUBLIC = "public"  # a route anyone may call, without a token (the function may check something else)
EVENT_ROLE = SERVICE  # who may POST events to a function: the broker's deliveries, internal senders
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

RouteHandler = Callable[["Call"], "flask.Response"]
EventHandler = Callable[["CloudEvent", "Context"], "CloudEvent | None"]


# The one place a function's name becomes its code: the local runner, func's entry and the
# manifests all call these (they need no import of the function itself, which keeps cold starts short).
def function_package(name: str) -> str:
    """The folder under functions/ (a `-` in the name is a `_` in the folder)."""
    return name.replace("-", "_")


def function_module(name: str) -> str:
    """The module that holds the function's SPEC and its target."""
    return f"functions.{function_package(name)}.main"


def relative_source(name: str) -> str:
    """FUNCTION_SOURCE as the image sets it: relative to the project root, POSIX separators."""
    return f"functions/{function_package(name)}/main.py"


def function_source(name: str) -> Path:
    """The file functions-framework loads (FUNCTION_SOURCE), in this checkout or installation."""
    return PROJECT_ROOT / relative_source(name)


@dataclass(frozen=True)
class BodyLimit:
    """The most bytes a route takes in a request body: a setting, plus room for framing (multipart)."""

    setting: str | None  # None: a fixed limit of `slack` bytes
    slack: int = 0

    def resolve(self, config: Settings) -> int:
        value = getattr(config, self.setting) if self.setting else 0
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"setting {self.setting} must be a byte count for a body limit")
        return value + self.slack


EVENT_BODY = BodyLimit("max_event_bytes")  # every route's limit unless it says otherwise
UPLOAD_BODY = BodyLimit("max_upload_bytes", slack=MULTIPART_ALLOWANCE)  # an image, raw or in a multipart form
SMALL_JSON_BODY = BodyLimit(None, slack=64 * 1024)  # a small JSON document (a trigger: a few hundred bytes)


class Serves(StrEnum):
    """A part the platform needs someone to play; the route that plays it says so (`Route.serves`)."""

    EXT_AUTHZ = "ext-authz"  # the gateway's external authorization check (a path prefix)
    STORAGE_WEBHOOK = "storage-webhook"  # MinIO's webhook target
    STORAGE_AMQP = "storage-amqp"  # RabbitmqSource events carrying MinIO's AMQP notifications
    TOKEN_ISSUER = "token-issuer"  # the dev issuer's realms (`/realms/<realm>/...`)


@dataclass(frozen=True)
class Route:
    """One HTTP route: methods, a path pattern in werkzeug's syntax (`/images/<id>`, `/put/<path:key>`),
    the role it needs (a platform role, or PUBLIC) and its handler.

    The runtime checks the role itself before calling the handler, whatever the gateway decided.
    A route with no handler is served by the runtime (health, metrics, the event endpoint).
    """

    methods: tuple[str, ...]
    path: str
    role: str
    handler: RouteHandler | None = None
    serves: Serves | None = None
    max_body: BodyLimit = EVENT_BODY  # checked before the body is read (Content-Length), and as it streams

    def __post_init__(self) -> None:
        where = f"route {' '.join(self.methods)} {self.path}"
        if self.role not in (*KNOWN_ROLES, PUBLIC):
            raise ValueError(f"{where} needs a role ({', '.join(KNOWN_ROLES)}) or PUBLIC, got {self.role!r}")
        if not self.methods or not set(self.methods) <= HTTP_METHODS:
            raise ValueError(f"{where}: methods must be among {', '.join(sorted(HTTP_METHODS))}")
        if not self.path.startswith("/"):
            raise ValueError(f"{where}: the path must start with '/'")


def route(
    methods: str,
    path: str,
    role: str,
    handler: RouteHandler | None = None,
    serves: Serves | None = None,
    max_body: BodyLimit = EVENT_BODY,
) -> Route:
    """`route("GET, DELETE", "/images/<id>", VIEWER, handler)`: methods as one comma-separated string."""
    names = tuple(m.strip().upper() for m in methods.split(",") if m.strip())
    return Route(names, path, role, handler, serves, max_body)


# Served by the runtime for every function: probes for the platform, metrics for Prometheus.
BUILTIN_ROUTES = (
    route("GET", "/healthz", PUBLIC),  # liveness
    route("GET", "/readyz", PUBLIC),  # readiness
    route("GET", "/metrics", SERVICE),  # Prometheus metrics of this process
)
EVENT_ROUTE = route("POST", "/", EVENT_ROLE)  # CloudEvents delivered by the broker


@dataclass(frozen=True)
class SettingRef:
    """A trigger filter value taken from the settings (a bucket name, say) when the trigger is made."""

    field: str

    def resolve(self, config: Settings) -> str:
        value = getattr(config, self.field)
        if not isinstance(value, str) or not value:
            raise ValueError(f"setting {self.field} must be a non-empty string for a trigger filter")
        return value


UPLOADS_BUCKET = SettingRef("uploads_bucket")


# Delivery workers of a trigger whose events are independent of each other (`TriggerSpec.in_any_order`).
UNORDERED_PARALLELISM = 4


@dataclass(frozen=True)
class TriggerSpec:
    """One subscription of a function: exact-match attribute filters and how to deliver.

    `parallelism` is the Knative RabbitMQ trigger's: 1 (the default) delivers in order (FIFO), so an
    event being retried holds up every event behind it through its backoffs, the price of order. Above
    1 events go out concurrently and in no particular order, and a retrying event waits out its backoff
    without holding up the others (DESIGN.md section 6).
    """

    name: str  # the Knative Trigger is named "<function>-<name>"
    filter: Mapping[str, str | SettingRef]
    path: str = "/"
    delivery: DeliverySpec = field(default_factory=DeliverySpec)
    parallelism: int = 1
    dead_letters: bool = True  # send exhausted events to the dead-letter sink function

    def in_any_order(self) -> TriggerSpec:
        """This trigger for a function to which the order of these events does not matter: delivered
        `UNORDERED_PARALLELISM` at once, so one failing event does not stall the rest."""
        return replace(self, parallelism=UNORDERED_PARALLELISM)

    def resolved_filter(self, config: Settings) -> dict[str, str]:
        """The filter with setting references replaced by their values."""
        return {k: v.resolve(config) if isinstance(v, SettingRef) else v for k, v in self.filter.items()}


@dataclass(frozen=True)
class Scaling:
    """Knative autoscaling for the function's Service (min 0: scale to zero)."""

    min_scale: int = 0
    max_scale: int = 10
    target_concurrency: int = 10
    container_concurrency: int = 0  # 0: no hard limit
    timeout_seconds: int = 300


@dataclass(frozen=True)
class Resources:
    """The container's requests and memory limit on Knative."""

    cpu_request: str = "100m"
    memory_request: str = "128Mi"
    memory_limit: str = "512Mi"


@dataclass(frozen=True)
class FunctionSpec:
    """Everything the runtime, the gateway policy, the local runner and the manifests know of a function.

    A function with `on_event` consumes CloudEvents on `POST /` (role EVENT_ROLE); `routes` are its own
    HTTP API. `database`: it owns one (DATAFROST_<NAME>_DB, else SQLite in the data dir). `uses_sink`:
    it posts events to the broker itself at K_SINK (a SinkBinding on Knative), not only as replies.
    `dead_letter_sink`: the triggers' dead letters go to it. `on_start` runs once per process.
    """

    name: str
    description: str
    consumes: tuple[str, ...] = ()
    emits: tuple[str, ...] = ()
    triggers: tuple[TriggerSpec, ...] = ()
    routes: tuple[Route, ...] = ()
    on_event: EventHandler | None = None
    on_start: Callable[[Context], None] | None = None
    dedupe: bool = True  # answer a redelivered (source, id) with the first answer, without handling it
    database: bool = False
    uses_sink: bool = False
    dead_letter_sink: bool = False
    scaling: Scaling = field(default_factory=Scaling)
    resources: Resources = field(default_factory=Resources)
    visibility: Visibility = "public"
    env: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not FUNCTION_NAME.match(self.name):
            raise ValueError(f"function name {self.name!r} must be lower-case letters, digits and '-'")
        seen: set[tuple[str, str]] = set()
        for r in self.all_routes:
            for method in r.methods:
                if (method, r.path) in seen:
                    raise ValueError(f"function {self.name} declares {method} {r.path} twice")
                seen.add((method, r.path))
            if r.handler is None and r not in (*BUILTIN_ROUTES, EVENT_ROUTE):
                raise ValueError(f"function {self.name}: route {r.path} has no handler")
        if self.triggers and self.on_event is None:
            raise ValueError(f"function {self.name} has triggers but no on_event handler")

    @property
    def kind(self) -> FunctionKind:
        return "cloudevent" if self.on_event is not None else "http"

    @property
    def all_routes(self) -> tuple[Route, ...]:
        """Every route the function answers: the runtime's, the event endpoint, its own."""
        event = (EVENT_ROUTE,) if self.on_event is not None else ()
        return (*BUILTIN_ROUTES, *event, *self.routes)

    def served(self, part: Serves) -> Route | None:
        return next((r for r in self.routes if r.serves == part), None)

    def max_body(self, config: Settings) -> int:
        """The largest body any of its routes takes: what its server may receive at all."""
        return max(r.max_body.resolve(config) for r in self.all_routes)

    @property
    def module(self) -> str:
        return function_module(self.name)

    @property
    def source(self) -> Path:
        return function_source(self.name)

    def trigger_name(self, trigger: TriggerSpec) -> str:
        return f"{self.name}-{trigger.name}"
