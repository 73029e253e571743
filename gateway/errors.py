"""Every typed error of the gateway, each carrying where it happened.

Mappers raise :class:`RecordError` (or :class:`FileErrors` for a whole file); the protocol decides
what to do with the connection. Configuration problems are :class:`ConfigError` with the key's
dotted path. The store raises :class:`StoreError` for what the caller can act on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum


class GatewayError(Exception):
    """Base class of every error the gateway raises on purpose."""


class ConfigError(GatewayError):
    """A configuration key has a wrong name, type or value. ``path`` is e.g. ``cvs.link.listen``."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class FrameError(GatewayError):
    """A frame on a link could not be read (too long, truncated, unknown kind)."""


@dataclass(frozen=True)
class RecordError(GatewayError):
    """One field of one record is wrong.

    ``record`` is the 1-based record (or line) number inside its file, or 0 for a single value
    such as a barcode typed by hand.
    """

    network: str
    record: int
    field: str
    value: str
    reason: str

    def __str__(self) -> str:
        where = f"record {self.record}, " if self.record else ""
        return f"{self.network}: {where}field {self.field}: {self.reason} (value {self.value!r})"


class FileErrors(GatewayError):
    """Every error found in one file; the file is refused as a whole."""

    def __init__(self, source: str, errors: Sequence[RecordError]) -> None:
        self.source = source
        self.errors = tuple(errors)
        first = "; ".join(str(e) for e in self.errors[:3])
        more = f" (+{len(self.errors) - 3} more)" if len(self.errors) > 3 else ""
        super().__init__(f"{source}: {len(self.errors)} error(s): {first}{more}")

    def report(self) -> str:
        """Every error, one per line, under a heading: the report beside a refused file."""
        lines = [f"refused: {len(self.errors)} error(s); nothing of this file was applied"]
        return "\n".join(lines + [str(e) for e in self.errors])

    def one_line(self) -> str:
        """Every error on one line: what a command prints before it exits 1."""
        return f"{self.source} refused, nothing applied: " + "; ".join(map(str, self.errors))


class StoreError(GatewayError):
    """The store could not do what was asked (not reachable, schema not migrated...)."""


class StoreStopped(StoreError):
    """The store was stopped (the daemon is shutting down): no new
    transaction begins. A job cut by it at shutdown has not failed."""


class PeerUnavailable(GatewayError):
    """An outbound peer (network center, webhook receiver) could not be reached."""


class TransitionError(GatewayError):
    """A state-machine transition that the rules do not allow (e.g. cancelling a paid bill)."""

    def __init__(self, entity: str, state: str, action: str, reason: str) -> None:
        self.entity = entity
        self.state = state
        self.action = action
        self.reason = reason
        super().__init__(f"cannot {action} {entity} in state {state}: {reason}")


@dataclass(frozen=True)
class FieldError:
    field: str  # a JSON path such as "customer.email", or a CSV "row 12: amount"
    message: str


class Refusal(Enum):
    """Why a request is refused as a whole (the merchant API's status code for each is
    gateway.protocols.api.statuses's)."""

    MALFORMED = "malformed"  # not the shape asked for: a wrong type, an unknown field
    INVALID = "invalid"  # well formed, and the rules refuse it: out of range, a past due date
    TOO_LARGE = "too_large"  # more than the gateway takes at once (a file's bytes or rows)
    UNSUPPORTED_ENCODING = "unsupported_encoding"  # a text encoding the gateway does not read


class InvalidRequest(GatewayError):
    """A request the gateway refuses as a whole, with every bad field named.

    ``kind`` is :attr:`Refusal.MALFORMED` for what is malformed (wrong type, unknown field) and
    :attr:`Refusal.INVALID` for values the rules refuse (out of range, a due date in the past,
    a channel the biller does not have).
    """

    def __init__(
        self,
        errors: Sequence[FieldError],
        kind: Refusal = Refusal.INVALID,
        title: str = "The request has invalid fields",
        detail: str | None = None,  # default: every error on one line
    ) -> None:
        self.errors = tuple(errors)
        self.kind = kind
        self.title = title
        super().__init__(
            detail or "; ".join(f"{e.field}: {e.message}" for e in self.errors) or title
        )


class Conflict(GatewayError):
    """The request contradicts what is stored (409): a bill_no reused with other fields, an
    Idempotency-Key reused with another body, a transition the bill's state forbids."""

    def __init__(self, detail: str, field: str | None = None) -> None:
        self.detail = detail
        self.field = field
        super().__init__(detail)


class NotFound(GatewayError):
    """Unknown, or another biller's: the two look exactly the same from outside."""

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(f"{what} not found")
