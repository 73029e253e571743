"""Who an action is written to the audit log as (gateway.store.audit): the person who acted,
or the daemon itself for its scheduled jobs."""

from __future__ import annotations

import getpass

from gateway.model import Principal


def key_actor(principal: Principal) -> str:
    """An admin API call: the admin key's id (never the key)."""
    return f"key:{principal.key_id}"


def cli_actor() -> str:
    """A ``gateway-admin`` command: the Unix user who ran it."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for the uid (a container)
        user = "unknown"
    return f"cli:{user}"[:64]


def console_actor(login: str) -> str:
    """A console user's action: the user's login (gateway.billing.console_users)."""
    return f"user:{login}"[:64]


def system_actor(job: str) -> str:
    """The daemon's own scheduled work (no person acts): ``system:<job>``, e.g.
    ``system:settlement`` or ``system:retention``."""
    return f"system:{job}"[:64]
