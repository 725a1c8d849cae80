"""Where a trigger may deliver: an http(s) URL without credentials, never a link-local or cloud metadata
address (the instance's credentials live there: a sink is a request the platform makes for whoever
created the trigger).

`url_problem` judges the URL as written (no name lookup), so a stored trigger is judged the same on
every start; `resolved_problem` also looks the host name up, as the delivery will.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

SCHEMES = ("http", "https")
MAX_URL_CHARS = 2048  # a URL longer than this is not an address anyone types (browsers' common limit)
LINK_LOCAL_NETWORKS = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
# Instance metadata services: AWS, GCP, Azure and OpenStack (169.254.169.254), AWS over IPv6
# (fd00:ec2::254), Alibaba Cloud (100.100.100.200); and GCP's names for its own.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog"})


def split_url(url: str) -> SplitResult:
    """The URL's parts; ValueError (naming the problem) for what no trigger may deliver to."""
    if not isinstance(url, str) or not url:
        raise ValueError("must be an http(s) URL")
    if len(url) > MAX_URL_CHARS:
        raise ValueError(f"is {len(url)} characters long, over the limit of {MAX_URL_CHARS}")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F or c == "\\" for c in url):
        raise ValueError("contains a space, a backslash or a control character")
    parts = urlsplit(url)
    if parts.scheme.lower() not in SCHEMES:
        raise ValueError(
            f"must be an http:// or https:// URL, not {parts.scheme[:20] or 'one without a scheme'}"
        )
    if not parts.hostname:
        raise ValueError("has no host")
    if "@" in parts.netloc:
        raise ValueError("must not carry credentials (user:password@)")
    parts.port  # noqa: B018 (raises ValueError for a port out of range or not a number)
    return parts


def host_name(parts: SplitResult) -> str:
    """The host as the resolver sees it: lower case, without a trailing dot or IPv6 brackets."""
    return (parts.hostname or "").rstrip(".").lower()


def literal_address(host: str) -> IPAddress | None:
    """The address a host written as a number names (any form the C resolver accepts: 169.254.169.254,
    [fe80::1], 2852039166, 0xa9fea9fe, 169.254.43518), None for a name."""
    try:
        address = ipaddress.ip_address(
            host.split("%", 1)[0]
        )  # an IPv6 zone (fe80::1%eth0) names no other host
    except ValueError:
        if not host or not all(c in "0123456789abcdefx." for c in host):
            return None
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(host))  # the legacy forms getaddrinfo takes
        except OSError:
            return None
    return _unmapped(address)


def _unmapped(address: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address (::ffff:169.254.169.254) as the IPv4 address it reaches."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def address_problem(address: IPAddress) -> str | None:
    """What `address` is when no trigger may deliver to it ("a link-local address (...)"), or None."""
    address = _unmapped(address)
    if address in METADATA_ADDRESSES:
        return f"a cloud metadata address ({address})"
    if any(address in network for network in LINK_LOCAL_NETWORKS):
        return f"a link-local address ({address})"
    return None


def url_problem(url: str) -> str | None:
    """Why no trigger may deliver to `url` as written ("must not carry credentials ..."), or None; no
    name is looked up. The text never repeats the URL (it may hold a password)."""
    try:
        parts = split_url(url)
    except ValueError as exc:
        return str(exc)
    host = host_name(parts)
    if host in METADATA_HOSTS:
        return f"is a cloud metadata address ({host})"
    address = literal_address(host)
    what = address_problem(address) if address is not None else None
    return f"is {what}" if what else None


def resolve(parts: SplitResult) -> list[IPAddress]:
    """Every address the URL's host resolves to now (empty when it does not resolve)."""
    host = host_name(parts)
    literal = literal_address(host)
    if literal is not None:
        return [literal]
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []  # not resolvable now: nothing it names can be judged (or reached)
    addresses: list[IPAddress] = []
    for *_, sockaddr in found:
        try:
            addresses.append(_unmapped(ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])))
        except ValueError:
            continue
    return addresses


def resolved_problem(url: str) -> str | None:
    """`url_problem`, and also for each address its host name resolves to now."""
    problem = url_problem(url)
    if problem is not None:
        return problem
    parts = split_url(url)
    for address in resolve(parts):
        what = address_problem(address)
        if what is not None:
            return f"names {host_name(parts)}, which resolves to {what}"
    return None
