"""Where webhooks may go: public (globally routed) addresses, and the operator's own networks.

A biller chooses the URL, so without this rule the daemon would POST wherever it can reach: its
own metrics listener on 127.0.0.1, a cloud's metadata service on 169.254.169.254, any host of
the private network it sits in. :class:`AddressPolicy` refuses every address that is not
globally routed — loopback, private (RFC 1918), link-local, CGNAT (100.64/10), unique local
(fc00::/7), multicast, unspecified, documentation, reserved, broadcast, and the IPv6 forms that
carry an IPv4 address (IPv4-mapped, NAT64, 6to4) when that address is refused — unless the
address is in ``webhooks.allowed_networks``. It is applied to literal addresses when an endpoint
is registered and to every resolved address when an attempt connects
(:mod:`gateway.protocols.webhook_client`). Pure: no I/O.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
)

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

_NAT64 = IPv6Network("64:ff9b::/96")  # RFC 6052: the last 32 bits are an IPv4 address
_NAT64_LOCAL = IPv6Network("64:ff9b:1::/48")  # RFC 8215: local-use NAT64, not global
_IPV4_COMPATIBLE = IPv6Network("::/96")  # deprecated ::a.b.c.d (and :: and ::1)


def normalize(ip: Address) -> Address:
    """An IPv4-mapped IPv6 address (``::ffff:a.b.c.d``) as the IPv4 address it reaches."""
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _embedded_ipv4(ip: IPv6Address) -> IPv4Address | None:
    """The IPv4 address a packet to ``ip`` ends up at, for NAT64 and 6to4 addresses."""
    if ip in _NAT64:
        return IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def is_public(ip: Address) -> bool:
    """Whether ``ip`` is a globally routed unicast address (IANA's special-purpose registries:
    "globally reachable"), and for IPv6 forms of IPv4 addresses, whether that one is."""
    ip = normalize(ip)
    if isinstance(ip, IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return is_public(embedded)
        if ip in _IPV4_COMPATIBLE or ip in _NAT64_LOCAL:
            return False
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


def parse_literal(host: str) -> Address | None:
    """``host`` (without brackets) as an IP address, or None for a name. IPv4 in the legacy forms
    that the C resolver also takes (``127.1``, ``2130706433``, ``0x7f.0.0.1``) counts as the
    address it stands for: the system would connect there. A trailing dot is ignored."""
    if host.endswith(".") and not host.endswith(".."):
        host = host[:-1]
    try:
        return ip_address(host)
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host):
        try:
            return IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def is_localhost(host: str) -> bool:
    """``localhost`` and ``*.localhost``: names that always mean this machine (RFC 6761)."""
    name = host.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


LOOPBACKS = (IPv4Address("127.0.0.1"), IPv6Address("::1"))


@dataclass(frozen=True)
class AddressPolicy:
    """Public addresses, and those in ``allowed`` (``webhooks.allowed_networks``)."""

    allowed: tuple[Network, ...] = ()

    def permits(self, ip: Address) -> bool:
        ip = normalize(ip)
        return any(ip in net for net in self.allowed) or is_public(ip)

    def permits_any(self, ips: Iterable[Address]) -> bool:
        return any(self.permits(ip) for ip in ips)

    def permits_host(self, host: str) -> bool:
        """At registration: False for a literal address (or ``localhost``) this policy refuses;
        True for any other name (its addresses are checked at each attempt)."""
        literal = parse_literal(host)
        if literal is not None:
            return self.permits(literal)
        if is_localhost(host):
            return self.permits_any(LOOPBACKS)
        return True
