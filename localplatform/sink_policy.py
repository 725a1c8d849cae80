"""Which sinks a trigger on this platform may have: what `eventing.sinks` allows anywhere, and on this
platform's own gateway (either listener, any spelling of this machine: 127.0.0.1, localhost, [::1],
0.0.0.0, its other addresses) only a function. The broker ingress there would hand every event back
to the trigger that sent it (a loop), and the gateway's API (the internal listener checks no token)
would take events as requests. A function's path (or the broker ingress) on another port of this
machine is another DataFrost gateway's, or none: refused with both addresses, since it is almost
always this platform meant under an old or default port (a sink on this platform is stored as a ref
to its function and follows the platform when its ports change).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Collection
from dataclasses import dataclass
from urllib.parse import unquote

from eventing.sinks import IPAddress, resolve, resolved_problem, split_url
from functions.registry import BROKER_PATH

FunctionOf = Callable[[str, str], str | None]  # (Host header, decoded path) -> the function it reaches


def is_this_machine(address: IPAddress) -> bool:
    """True when a connection to `address` stays on this machine (loopback, unspecified, or one of its
    own addresses: one a socket can bind to; nothing is sent)."""
    if address.is_loopback or address.is_unspecified:
        return True
    family = socket.AF_INET6 if isinstance(address, ipaddress.IPv6Address) else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((str(address), 0))
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class SinkPolicy:
    gateway_ports: Collection[int]  # both listeners of this platform's gateway
    function_of: FunctionOf  # how the gateway routes a request (None: one of its own routes)
    this_platform: str = ""  # the public URL, named when a sink is another gateway's address

    def problem(self, url: str) -> str | None:
        """Why a trigger on this platform may not deliver to `url` ("is this platform's ..."), or None."""
        problem = resolved_problem(url)
        if problem is not None:
            return problem
        parts = split_url(url)
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
        if not any(is_this_machine(a) for a in resolve(parts)):
            return None
        path = unquote(parts.path) or "/"  # as the gateway sees it (the server decodes the path)
        function = self.function_of(parts.netloc, path)
        if port not in self.gateway_ports:
            if function is None and path.rstrip("/") != BROKER_PATH:
                return None  # another service on this machine
            here = self.this_platform or "ports " + ", ".join(map(str, sorted(self.gateway_ports)))
            return (
                f"points at {parts.netloc}, a DataFrost gateway address on this machine that is not this "
                f"platform's ({here}): use this platform's address (kept as a reference to the function)"
            )
        if function is not None:
            return None
        if path.rstrip("/") == BROKER_PATH:
            return "is this platform's own broker ingress: every event sent there would come back (a loop)"
        return f"is this platform's own gateway ({path[:80]}), not one of its functions"
