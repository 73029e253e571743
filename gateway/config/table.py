"""Reading one TOML table: typed getters that name each key's dotted path, a final check that
no key was left unread, and the checks several sections share (URLs, certificate names)."""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from datetime import date
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import SplitResult, urlsplit

from twisted.internet.endpoints import clientFromString, serverFromString

from gateway.errors import ConfigError
from gateway.infra.listen import reuse_port_problem

T = TypeVar("T")


MISSING: Any = object()


class Table:
    """One TOML table being read: typed getters that name the key's path, and a final check
    that no key was left unread (a misspelt key must not be silently ignored)."""

    def __init__(self, raw: object, path: str, base: Path) -> None:
        if not isinstance(raw, Mapping):
            raise ConfigError(path, f"must be a table, not {type(raw).__name__}")
        self.raw: Mapping[str, Any] = raw
        self.path = path
        self.base = base
        self.seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def _get(self, name: str, kind: type | tuple[type, ...], kind_name: str, default: Any) -> Any:
        self.seen.add(name)
        if name not in self.raw:
            if default is MISSING:
                raise ConfigError(self.key(name), "is required")
            return default
        value = self.raw[name]
        # bool is an int in Python; TOML keeps them apart and so do we.
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise ConfigError(self.key(name), f"must be {kind_name}, not a boolean")
        if not isinstance(value, kind):
            raise ConfigError(self.key(name), f"must be {kind_name}, not {type(value).__name__}")
        return value

    def string(
        self, name: str, default: Any = MISSING, pattern: str | None = None, hint: str = ""
    ) -> str:
        value: str = self._get(name, str, "a string", default)
        if pattern is not None and value is not default and not re.fullmatch(pattern, value):
            raise ConfigError(self.key(name), f"{value!r} is not {hint or pattern}")
        return value

    def integer(
        self, name: str, default: Any = MISSING, low: int | None = None, high: int | None = None
    ) -> int:
        value: int = self._get(name, int, "an integer", default)
        if low is not None and value < low:
            raise ConfigError(self.key(name), f"{value} is below the minimum {low}")
        if high is not None and value > high:
            raise ConfigError(self.key(name), f"{value} is above the maximum {high}")
        return value

    def number(self, name: str, default: Any = MISSING, low: float = 0.0) -> float:
        value = self._get(name, (int, float), "a number", default)
        if not math.isfinite(value):
            raise ConfigError(self.key(name), f"{value} is not a finite number")
        if value <= low:
            raise ConfigError(self.key(name), f"{value} must be greater than {low:g}")
        return float(value)

    def boolean(self, name: str, default: Any = MISSING) -> bool:
        value: bool = self._get(name, bool, "true or false", default)
        return value

    def day(self, name: str) -> date:
        value = self._get(name, (date, str), "a date (YYYY-MM-DD)", MISSING)
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                raise ConfigError(self.key(name), f"{value!r} is not a date (YYYY-MM-DD)") from None
        if not isinstance(value, date) or hasattr(value, "hour"):
            raise ConfigError(self.key(name), "must be a date (YYYY-MM-DD), not a date-time")
        return value

    def path_value(self, name: str, default: Any = MISSING) -> Path:
        value = self.string(name, default)
        if not value:
            raise ConfigError(self.key(name), "must not be empty")
        try:
            path = Path(value).expanduser()
        except RuntimeError as e:
            raise ConfigError(self.key(name), f"{value!r}: {e}") from None
        return path if path.is_absolute() else (self.base / path)

    def endpoint(self, name: str, *, client: bool, default: Any = MISSING) -> str:
        value = self.string(name, default)
        try:
            # Parsing builds an endpoint object without touching the network or a reactor.
            endpoint = clientFromString(None, value) if client else serverFromString(None, value)
        except Exception as e:
            raise ConfigError(self.key(name), f"{value!r} is not a Twisted endpoint: {e}") from None
        port = getattr(endpoint, "_port", None)  # TCP endpoints: refuse what cannot be bound
        if isinstance(port, int) and not (1 if client else 0) <= port <= 65535:
            raise ConfigError(self.key(name), f"{value!r}: port {port} is out of range")
        return value

    def reuse_port(self, listen: str) -> bool:
        """``reuse_port`` (default false): whether the ``listen`` endpoint read from this table
        is shared with the host's other daemons (SO_REUSEPORT); only a ``tcp:``/``tcp6:`` one
        can be."""
        value = self.boolean("reuse_port", False)
        if value and (problem := reuse_port_problem(listen)) is not None:
            raise ConfigError(self.key("reuse_port"), problem)
        return value

    def table(self, name: str, required: bool = False) -> Table | None:
        self.seen.add(name)
        if name not in self.raw:
            if required:
                raise ConfigError(self.key(name), "is required")
            return None
        return Table(self.raw[name], self.key(name), self.base)

    def array_of_tables(self, name: str) -> list[Table] | None:
        self.seen.add(name)
        if name not in self.raw:
            return None
        value = self.raw[name]
        if not isinstance(value, list):
            raise ConfigError(self.key(name), "must be an array of tables ([[...]])")
        return [Table(item, f"{self.key(name)}[{i}]", self.base) for i, item in enumerate(value)]

    def done(self) -> None:
        for name in self.raw:
            if name not in self.seen:
                raise ConfigError(self.key(name), "unknown key")


def section(
    parent: Table, name: str, read: Callable[[Table], T], required: bool = False
) -> T | None:
    table = parent.table(name, required)
    if table is None:
        return None
    value = read(table)
    table.done()
    return value


def split_url(key: str, url: str, what: str) -> SplitResult:
    """``urlsplit``, or :class:`ConfigError` for a URL it refuses (a ``]`` without its ``[``)."""
    try:
        return urlsplit(url)
    except ValueError:
        raise ConfigError(key, f"{url!r} is not {what}") from None


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback  # 127.0.0.0/8, ::1
    except ValueError:
        return False


def require_https(key: str, url: str) -> None:
    """``url`` must be https unless its host is a loopback address (development and tests)."""
    parts = urlsplit(url)
    if parts.scheme != "https" and not is_loopback(parts.hostname or ""):
        raise ConfigError(
            key, f"{url!r} must be https:// (plain http only on a loopback host such as 127.0.0.1)"
        )


#: A certificate name: printable, no control character, no surrounding space.
_CERT_NAME = re.compile(r"[^\x00-\x20\x7f](?:[^\x00-\x1f\x7f]{0,251}[^\x00-\x20\x7f])?")


def peer_names(t: Table, name: str) -> tuple[str, ...]:
    """A required, non-empty list of certificate names (CN or DNS subjectAltName)."""
    value = t._get(name, list, "a list of certificate names", MISSING)
    names: list[str] = []
    for item in value:
        if not isinstance(item, str) or not _CERT_NAME.fullmatch(item):
            raise ConfigError(t.key(name), f"{item!r} is not a certificate name")
        names.append(item)
    if not names:
        raise ConfigError(t.key(name), "must list at least one certificate name")
    if len({n.casefold() for n in names}) != len(names):
        raise ConfigError(t.key(name), "lists a name twice")
    return tuple(names)


def at_most(t: Table, name: str, value: float, high: float) -> float:
    if value > high:
        raise ConfigError(t.key(name), f"{value:g} is above the maximum {high:g}")
    return value
