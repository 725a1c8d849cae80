"""Sink rules (`eventing.sinks`): a forbidden address is refused in every form the resolver accepts."""

from __future__ import annotations

import ipaddress
import socket

from hypothesis import given
from hypothesis import strategies as st

from eventing.sinks import LINK_LOCAL_NETWORKS, METADATA_ADDRESSES, literal_address, url_problem

LINK_LOCAL_V4 = ipaddress.IPv4Network("169.254.0.0/16")


def spellings(address: ipaddress.IPv4Address) -> list[str]:
    """Ways to write an IPv4 address that getaddrinfo (inet_aton) takes: dotted, one number, hex, and
    the two- and three-part forms."""
    a, b, c, d = address.packed
    number = int(address)
    return [
        str(address),
        str(number),
        f"0x{number:08x}",
        f"0x{a:02x}.0x{b:02x}.0x{c:02x}.0x{d:02x}",
        f"{a}.{b}.{c * 256 + d}",
        f"{a}.{b * 65536 + c * 256 + d}",
        f"[::ffff:{address}]",
    ]


link_local_v4 = st.integers(int(LINK_LOCAL_V4[0]), int(LINK_LOCAL_V4[-1])).map(ipaddress.IPv4Address)
link_local_v6 = st.integers(0, 2**118 - 1).map(lambda n: ipaddress.IPv6Address((0xFE80 << 112) + n))


@given(link_local_v4)
def test_a_link_local_ipv4_address_is_refused_however_it_is_written(address: ipaddress.IPv4Address) -> None:
    for host in spellings(address):
        problem = url_problem(f"http://{host}:8080/hook")
        assert problem is not None, host
        assert problem.endswith(f"address ({address})"), (host, problem)


@given(link_local_v6)
def test_a_link_local_ipv6_address_is_refused(address: ipaddress.IPv6Address) -> None:
    assert url_problem(f"http://[{address}]/hook") == f"is a link-local address ({address})"


@given(st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address))
def test_the_parser_reads_an_address_as_the_resolver_does(address: ipaddress.IPv4Address) -> None:
    """What a delivery would connect to is what the rule judged: no spelling slips between them."""
    for host in spellings(address)[:-1]:  # getaddrinfo takes no brackets
        resolved = {info[4][0] for info in socket.getaddrinfo(host, 80, type=socket.SOCK_STREAM)}
        assert resolved == {str(address)}, host
        assert literal_address(host) == address, host


@given(st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address))
def test_only_link_local_and_metadata_addresses_are_refused(address: ipaddress.IPv4Address) -> None:
    forbidden = address in METADATA_ADDRESSES or any(address in n for n in LINK_LOCAL_NETWORKS)
    assert (url_problem(f"http://{address}/") is not None) == forbidden
