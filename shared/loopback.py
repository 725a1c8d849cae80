"""Whether a Host header or a peer address means this machine's loopback.

A listener that trusts its callers because it is reachable from this machine only (the cluster-local
listener of `datafrost dev`, the dev token endpoint) must also check the Host header: a web page whose
own domain an attacker re-resolved to 127.0.0.1 (DNS rebinding) reaches loopback from the user's
browser, same-origin, but its requests carry that domain as their Host.
"""

from __future__ import annotations

import ipaddress


def hostname(host: str) -> str:
    """The name in a Host header: lower-case, without port, IPv6 brackets or a trailing dot."""
    name = host.strip().lower()
    if name.startswith("["):
        name = name[1 : name.find("]")] if "]" in name else name[1:]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    return name.rstrip(".")


def is_loopback_address(address: str) -> bool:
    """A loopback IP address (127.0.0.0/8, ::1, or IPv4-mapped loopback)."""
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def names_loopback(host: str) -> bool:
    """A Host naming loopback: localhost, *.localhost (RFC 6761: always loopback), a loopback address."""
    name = hostname(host)
    return name == "localhost" or name.endswith(".localhost") or is_loopback_address(name)
