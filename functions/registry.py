"""Every function DataFrost runs, declared once: the local runner, the gateway policy (`authz`) and the
Knative manifests read this, and nothing else names a function.

Loading checks what a spec alone cannot: names unique and clear of the gateway's own paths, every
platform part (`Serves`) played by exactly one route, at most one dead-letter sink.
"""

from __future__ import annotations

import importlib
from functools import cache

from functions.spec import PUBLIC, SMALL_JSON_BODY, FunctionSpec, Route, Serves, function_module, route
from shared.auth.identity import ADMIN, SERVICE, VIEWER
from shared.auth.policy import RoutePolicy
from shared.settings import Settings

# One line per function; its folder functions/<name>/main.py holds SPEC and the `handle` target.
FUNCTIONS = (
    "storage-events",
    "upload",
    "inspect",
    "thumbnail",
    "catalog",
    "dead-letters",
    "event-display",
    "authz",
)
BROKER_PATH = "/brokers/default"  # the broker ingress on the gateway (`POST`), as DESIGN.md fixes it
TRIGGERS_PATH = f"{BROKER_PATH}/triggers"
# The gateway's own routes (not a function's): served by the local gateway, checked by authz like the rest.
GATEWAY_ROUTES = (
    route("GET", "/healthz", PUBLIC),  # gateway health
    route("GET", "/metrics", VIEWER),  # the gateway's and every running function's metrics
    route("GET", "/functions", VIEWER),  # function processes and their state
    route("POST", BROKER_PATH, SERVICE),  # broker ingress
    route("GET, POST", TRIGGERS_PATH, ADMIN, max_body=SMALL_JSON_BODY),  # list or create triggers
    route("GET, DELETE", TRIGGERS_PATH + "/<name>", ADMIN),  # show or delete a trigger
)
GATEWAY_PATHS = frozenset(r.path.strip("/").split("/", 1)[0] for r in GATEWAY_ROUTES)


class RegistryError(ValueError):
    """The registry's functions contradict each other (two with one name, a part played twice...)."""


@cache
def all_specs() -> tuple[FunctionSpec, ...]:
    """Import each function module for its SPEC (the handlers' own dependencies load lazily)."""
    specs = []
    for name in FUNCTIONS:
        try:
            spec = importlib.import_module(function_module(name)).SPEC
        except ValueError as exc:  # a route without a role, say: refused as the spec is built
            raise RegistryError(f"function {name}: {exc}") from None
        if spec.name != name:
            raise RegistryError(f"{function_module(name)} declares {spec.name!r}, registered as {name!r}")
        specs.append(spec)
    check(tuple(specs))
    return tuple(specs)


def check(specs: tuple[FunctionSpec, ...]) -> None:
    """What no single spec can check; RegistryError names the problem."""
    names = [s.name for s in specs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise RegistryError(f"functions declared twice: {', '.join(twice)}")
    taken = sorted(set(names) & GATEWAY_PATHS)
    if taken:
        raise RegistryError(f"function names taken by the gateway's own paths: {', '.join(taken)}")
    for part in Serves:
        players = [s.name for s in specs if s.served(part) is not None]
        if len(players) > 1:
            raise RegistryError(f"{part} is served by more than one function: {', '.join(players)}")
    sinks = [s.name for s in specs if s.dead_letter_sink]
    if len(sinks) > 1:
        raise RegistryError(f"more than one dead-letter sink: {', '.join(sinks)}")


def spec(name: str) -> FunctionSpec | None:
    return next((s for s in all_specs() if s.name == name), None)


def served_by(part: Serves) -> tuple[FunctionSpec, Route]:
    """The function and route that play a platform part; RegistryError when none does."""
    for s in all_specs():
        found = s.served(part)
        if found is not None:
            return s, found
    raise RegistryError(f"no function serves {part}")


def route_prefix(route_path: str) -> str:
    """A route path up to its first parameter, without a trailing slash (`/check/<path:p>` -> `/check`)."""
    return route_path.split("<", 1)[0].rstrip("/")


def dead_letter_sink() -> FunctionSpec | None:
    return next((s for s in all_specs() if s.dead_letter_sink), None)


def on_gateway(function: str, route_path: str) -> str:
    """Where a function's route is on the gateway: `/<function>` in front (`/` becomes `/<function>/`)."""
    return f"/{function}{route_path}"


def largest_body(config: Settings) -> int:
    """The largest request body any route takes: the most the gateway's server receives at all."""
    own = max(r.max_body.resolve(config) for r in GATEWAY_ROUTES)
    return max(own, *(s.max_body(config) for s in all_specs()))


@cache
def gateway_policy() -> RoutePolicy[Route]:
    """The route every gateway path reaches (its role, its body limit): the gateway's own routes and
    every function's, by prefix."""
    rules = [(r.methods, r.path, r) for r in GATEWAY_ROUTES]
    for s in all_specs():
        rules += [(r.methods, on_gateway(s.name, r.path), r) for r in s.all_routes]
    return RoutePolicy(rules)
