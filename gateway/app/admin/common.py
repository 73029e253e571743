"""What every ``gateway-admin`` command shares: its one-line failure and the wall clock."""

from __future__ import annotations

import time
from datetime import UTC, datetime


class CommandError(Exception):
    """A one-line reason (gateway.app.admin.commands prints it and exits 1)."""


def utc_now() -> datetime:
    """The commands run without a reactor: their clock is the wall clock."""
    return datetime.fromtimestamp(time.time(), UTC)
