"""Who is at the other end of a TLS link: its address for the log, and which of its certificate's
names a link allows (gateway.protocols.cvs)."""

from __future__ import annotations

from collections.abc import Collection

from twisted.internet.interfaces import IAddress


def address_text(address: IAddress | None) -> str:
    """A peer's address for the log: ``host:port``, ``[v6]:port``, or what the address says."""
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if host is None or port is None:
        return str(address)
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def allowed_name(names: tuple[str, ...], peers: Collection[str]) -> str | None:
    """The first of a certificate's ``names`` that ``peers`` allows (DNS names compare without
    regard to case), as ``peers`` spells it; ``None`` if none is allowed."""
    allowed = {p.casefold(): p for p in peers}
    for name in names:
        if name.casefold() in allowed:
            return allowed[name.casefold()]
    return None
