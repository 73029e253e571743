"""Identifiers for payments, refund cases and events: ``<prefix>_<24 hex digits>``.

96 random bits each, as ``secrets.token_hex(12)`` would give, but drawn from the OS in blocks:
one ``os.urandom`` call per id costs a system call and a GIL hand-off per message, which shows
on the ingest's hot path. Thread-safe (the store runs several threads on PostgreSQL).
"""

from __future__ import annotations

import secrets
import threading


class IdGenerator:
    def __init__(self, block: int = 4096) -> None:
        self._block = block
        self._pool = b""
        self._at = 0
        self._lock = threading.Lock()

    def __call__(self, prefix: str) -> str:
        with self._lock:
            if self._at + 12 > len(self._pool):
                self._pool, self._at = secrets.token_bytes(12 * self._block), 0
            raw = self._pool[self._at : self._at + 12]
            self._at += 12
        return f"{prefix}_{raw.hex()}"


new_id = IdGenerator()
