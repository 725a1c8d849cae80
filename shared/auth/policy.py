"""Which role a request needs, from a table of routes: the gateway's path form `/<function>/<rest>`.

The table is data the registry builds from every function's spec (`functions.registry.gateway_policy`);
nothing here names a function. A path no route declares has no role: it is refused (404) at the edge.

Paths are canonical (`shared.paths`): one that could be read two ways (dot segments, doubled
slashes, encoded slashes or dots, backslashes, control characters) is refused outright
(`RefusedPath`). With host routing (`Host: catalog.localhost`, or Knative's
`catalog.<namespace>.<domain>`), `gateway_path` puts the function's name in front of the path first.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Generic, TypeVar

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule

from shared.paths import RefusedPath, checked

__all__ = ["NoRoute", "RefusedPath", "RoutePolicy", "gateway_path", "host_function"]
T = TypeVar("T")


class NoRoute(LookupError):
    """No route declares this method and path; `allowed`: the methods declared for the path, if any."""

    def __init__(self, message: str, allowed: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.allowed = allowed


class RoutePolicy(Generic[T]):
    """(methods, path pattern in werkzeug's syntax, value) rules: `lookup` finds the value (the route
    and its role, say) for one request."""

    def __init__(self, rules: Iterable[tuple[Collection[str], str, T]]) -> None:
        self.rules = tuple((frozenset(methods), pattern, value) for methods, pattern, value in rules)
        self._urls = Map(
            [
                Rule(pattern, methods=sorted(methods), endpoint=i)
                for i, (methods, pattern, _) in enumerate(self.rules)
            ],
            strict_slashes=False,
            merge_slashes=False,
            redirect_defaults=False,
        ).bind("")  # matching only: one adapter serves every check

    def lookup(self, method: str, path: str) -> T:
        """The value of the rule that matches a decoded path. Raises RefusedPath (a path that is
        not canonical) or NoRoute."""
        path = checked(path)
        try:
            index, _ = self._urls.match(path, method=method.upper())
        except NotFound:
            raise NoRoute(f"no route for {method.upper()} {path}") from None
        except MethodNotAllowed as exc:
            allowed = tuple(sorted(exc.valid_methods or ()))
            raise NoRoute(
                f"{method.upper()} is not allowed on {path} ({', '.join(allowed)})", allowed
            ) from None
        return self.rules[index][2]


def host_function(host: str | None, functions: Collection[str]) -> str | None:
    """The function a Host names by host routing (`<function>.<anything>[:port]`), else None.

    The one parser of host routing: the gateway routes with it and authz checks with it, so what is
    checked is what is served.
    """
    hostname = (host or "").strip().lower()
    if hostname.startswith("["):  # an IPv6 literal names no function
        return None
    label = hostname.rsplit(":", 1)[0].split(".", 1)[0]
    return label if "." in hostname and label in functions else None


def gateway_path(host: str | None, path: str, functions: Collection[str]) -> str:
    """The gateway's path form of a request: host routing (`<function>.<anything>`) becomes a prefix."""
    name = host_function(host, functions)
    return path if name is None else f"/{name}/{path.lstrip('/')}"
