"""Stored sinks that name a function of this platform, not a port: Knative's `ref`.

A trigger made with `datafrost trigger create --sink http://127.0.0.1:8080/event-display/` is kept in
`<data dir>/triggers.json` as a Destination as Knative writes one, `{"ref": {"apiVersion":
"serving.knative.dev/v1", "kind": "Service", "name": "event-display"}, "uri": "/"}`, and resolved to the
platform's current cluster-local URL whenever it is loaded (at start, at every create), so a restart
on other ports keeps it delivering. A sink elsewhere stays a URL.

An older file holds URLs: one addressed to this machine (loopback) whose path or Host names one of this
platform's functions was made against this platform (the gateway refuses such a sink on any other
DataFrost port) and is read as that function's ref.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from eventing.sinks import split_url
from shared.auth.policy import host_function
from shared.loopback import names_loopback

SERVICE_API = "serving.knative.dev/v1"
SERVICE_KIND = "Service"
SINK_FIELDS = (("subscriber",), ("delivery", "dead_letter_sink"))


def function_ref(url: str, functions: Collection[str]) -> tuple[str, str] | None:
    """(function, path) when `url` addresses one of `functions` through a gateway on loopback (path
    routing `/<function>/<rest>` or host routing `<function>.localhost`), else None."""
    try:
        parts = split_url(url)
    except ValueError:
        return None
    if not names_loopback(parts.netloc.rpartition("@")[2]):
        return None
    path = unquote(parts.path) or "/"
    query = f"?{parts.query}" if parts.query else ""
    by_host = host_function(parts.netloc, functions)
    if by_host is not None:
        return by_host, path + query
    name, slash, rest = path.lstrip("/").partition("/")
    if name not in functions:
        return None
    return name, ("/" + rest if slash else "/") + query


def ref_json(function: str, path: str) -> dict[str, Any]:
    """Knative's Destination naming a Service and a path under it."""
    return {"ref": {"apiVersion": SERVICE_API, "kind": SERVICE_KIND, "name": function}, "uri": path}


def ref_of(value: Any) -> tuple[str, str] | None:
    """(function, path) of a stored Destination, None for anything else."""
    if not isinstance(value, Mapping) or not isinstance(value.get("ref"), Mapping):
        return None
    name, uri = value["ref"].get("name"), value.get("uri") or "/"
    if not isinstance(name, str) or not isinstance(uri, str) or value["ref"].get("kind") != SERVICE_KIND:
        return None
    return name, uri if uri.startswith("/") else "/" + uri


def shown(function: str, path: str) -> str:
    """How `trigger list` shows a ref: `kn`'s `ksvc:<name>`, with its path when it has one."""
    return f"ksvc:{function}" + ("" if path == "/" else path)


@dataclass(frozen=True)
class SinkRefs:
    """Converts a trigger's JSON between its stored form (refs) and its running form (URLs)."""

    origin: str  # the cluster-local listener the refs resolve to: http://127.0.0.1:<port>
    functions: frozenset[str]

    def url(self, function: str, path: str) -> str:
        return f"{self.origin}/{function}{path}"

    def stored(self, entry: Mapping[str, Any]) -> dict[str, Any]:
        """`entry` (a trigger's JSON) with each sink on this platform replaced by its ref."""
        return self._map(entry, self._to_ref)

    def running(self, entry: Any) -> Any:
        """A stored entry with each ref (or recognized old URL) resolved to the current URL."""
        return self._map(entry, self._to_url) if isinstance(entry, Mapping) else entry

    def _to_ref(self, value: Any) -> Any:
        found = function_ref(value, self.functions) if isinstance(value, str) else None
        return ref_json(*found) if found else value

    def _to_url(self, value: Any) -> Any:
        found = ref_of(value) or (function_ref(value, self.functions) if isinstance(value, str) else None)
        if found is None:
            return value
        return self.url(*found) if found[0] in self.functions else value  # unknown: refused as invalid

    @staticmethod
    def _map(entry: Mapping[str, Any], convert: Any) -> dict[str, Any]:
        out = dict(entry)
        if "subscriber" in out:
            out["subscriber"] = convert(out["subscriber"])
        delivery = out.get("delivery")
        if isinstance(delivery, Mapping) and delivery.get("dead_letter_sink") is not None:
            out["delivery"] = {**delivery, "dead_letter_sink": convert(delivery["dead_letter_sink"])}
        return out
