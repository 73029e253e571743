"""The reactor as an outbound HTTP(S) client takes it: one name for several of Twisted's
interfaces.

A type, not a promise checked at run time: the reactor provides each interface listed, not this
name (as ``twisted.internet.reactor`` is typed by Twisted's own ``_IReactorCommon``). A module
that needs only one of them (the clock, the thread pool) takes that one interface instead.
"""

from __future__ import annotations

from twisted.internet.interfaces import (
    IReactorPluggableNameResolver,
    IReactorTCP,
    IReactorTime,
)


class IClientReactor(IReactorTCP, IReactorTime, IReactorPluggableNameResolver):
    """TCP connections, name resolution and timeouts: what ``twisted.web.client.Agent``, its
    connection pool and ``treq`` use of the reactor (TLS is added in memory, over TCP)."""
