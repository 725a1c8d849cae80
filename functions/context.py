"""What the runtime hands a function's handlers, in the shape of func's `start(cfg)`.

`Context`: one per function process, built by the runtime from the environment on the first request:
the typed settings, and the clients the handlers build from them on first use (never at import: cold
starts matter when functions scale to zero). `Call`: one HTTP request to one of the function's
routes, with its path parameters and the caller the runtime verified for the route's role.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from shared.settings import Settings

if TYPE_CHECKING:
    import flask

    from shared.auth.identity import Identity

T = TypeVar("T")


class Context:
    """The function process's settings and its clients, each built once from them on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._clients: dict[Callable[[Settings], Any], Any] = {}
        self._lock = threading.Lock()

    def client(self, factory: Callable[[Settings], T]) -> T:
        """`factory(settings)`, called once per process (also under concurrent first requests)."""
        try:
            return self._clients[factory]
        except KeyError:
            pass
        with self._lock:
            if factory not in self._clients:
                self._clients[factory] = factory(self.settings)
            return self._clients[factory]


@dataclass(frozen=True)
class Call:
    """One request to a route: the request, its path parameters, the verified caller, the context."""

    request: flask.Request
    params: Mapping[str, str]
    identity: Identity | None  # None on a PUBLIC route, or with auth off (everything is allowed)
    context: Context

    @property
    def settings(self) -> Settings:
        return self.context.settings

    def client(self, factory: Callable[[Settings], T]) -> T:
        return self.context.client(factory)
