"""``[console]``: the console's sessions and login limits (docs/config.md, docs/console.md).

The section is optional: without it the console is served with these defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from gateway.config.table import Table
from gateway.errors import ConfigError


@dataclass(frozen=True)
class ConsoleConfig:
    enabled: bool = True  # false: /console/ answers 404
    idle_timeout: timedelta = timedelta(minutes=30)  # a session without a request ends
    absolute_timeout: timedelta = timedelta(hours=12)  # a session ends this long after login
    max_failed_logins: int = 5  # wrong passwords in a row that lock the login …
    lockout: timedelta = timedelta(minutes=15)  # … for this long
    login_attempts_per_minute: float = 10.0  # per client address, after a burst of …
    login_burst: int = 20  # … this many


def parse_console(t: Table) -> ConsoleConfig:
    idle = t.number("idle_timeout", 1800.0, low=59.0)
    absolute = t.number("absolute_timeout", 43200.0, low=59.0)
    if absolute < idle:
        raise ConfigError(t.key("absolute_timeout"), "must not be shorter than idle_timeout")
    return ConsoleConfig(
        enabled=t.boolean("enabled", True),
        idle_timeout=timedelta(seconds=idle),
        absolute_timeout=timedelta(seconds=absolute),
        max_failed_logins=t.integer("max_failed_logins", 5, low=1, high=100),
        lockout=timedelta(seconds=t.number("lockout", 900.0, low=0.0)),
        login_attempts_per_minute=t.number("login_attempts_per_minute", 10.0, low=0.0),
        login_burst=t.integer("login_burst", 20, low=1, high=10_000),
    )
