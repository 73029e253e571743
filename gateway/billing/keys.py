"""API keys: issued once, stored as a SHA-256 hash, looked up with a short cache.

A key is 32 random bytes (256 bits), so a plain SHA-256 is enough to store it: there is nothing
to brute-force that a slow hash would protect. The cache keeps the hot path off the database:

- a key found is remembered for ``api.auth_cache_seconds`` (at most 60), and never past the end
  of its rotation grace, so a revoked key stops working within ``auth_cache_seconds`` and a
  rotated one on time;
- a key not found is remembered for :data:`NEGATIVE_SECONDS`, so the same wrong key sent again
  and again costs one database query per few seconds, not one per request;
- text that cannot be a key (not ``gw_`` and 43 URL-safe characters) never reaches the database.

Both caches are bounded (least recently used entries go first) and keyed by the SHA-256 of the
key, never the key itself. A key works while its ``revoked_at`` is null or still to come.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections import OrderedDict
from datetime import datetime
from typing import TypeVar

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime

from gateway.clock import now
from gateway.model import Principal
from gateway.store import Store
from gateway.store.billers import insert_api_key, principal_for_hash

KEY_PREFIX = "gw_"
#: How much of a key is kept to show (``gw_`` and 4 characters of the 43 random ones): enough
#: for a person to tell two keys apart, nothing to guess the rest with.
SHOWN_LENGTH = len(KEY_PREFIX) + 4
NAME_MAX = 64  # api_keys.name: what the biller calls a key


def name_ok(name: str) -> bool:
    """A key's name: 1 to :data:`NAME_MAX` characters, none of them a control character."""
    return 0 < len(name) <= NAME_MAX and not any(ord(c) < 0x20 or ord(c) == 0x7F for c in name)


_V = TypeVar("_V")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> tuple[str, str]:
    """(key_id, secret key). The key id is safe to log; the key is shown once."""
    return "key_" + secrets.token_hex(8), KEY_PREFIX + secrets.token_urlsafe(32)


def shown_prefix(key: str) -> str:
    """The part of a key that is stored to be shown (``api_keys.prefix``)."""
    return key[:SHOWN_LENGTH]


async def issue_key(
    store: Store, clock: IReactorTime, *, biller_id: str | None, is_admin: bool
) -> tuple[str, str]:
    key_id, key = new_key()
    await store.run_interaction(
        "keys.insert",
        insert_api_key,
        key_id=key_id,
        key_hash=hash_key(key),
        biller_id=biller_id,
        is_admin=is_admin,
        now=now(clock),
        prefix=shown_prefix(key),
    )
    return key_id, key


#: How long a key that was not found is remembered. Short: it only has to absorb a stream of the
#: same wrong key; keys are random, so no key about to be issued is ever in it.
NEGATIVE_SECONDS = 5.0

_KEY_SHAPE = re.compile(KEY_PREFIX + r"[A-Za-z0-9_\-]{43}")


def well_formed(key: str) -> bool:
    """Whether ``key`` has the shape of a key this gateway issues (checked before any lookup)."""
    return _KEY_SHAPE.fullmatch(key) is not None


class Authenticator:
    def __init__(
        self,
        store: Store,
        clock: IReactorTime,
        cache_seconds: float,
        max_entries: int = 10_000,
        negative_seconds: float = NEGATIVE_SECONDS,
    ) -> None:
        self._store = store
        self._clock = clock
        self._ttl = cache_seconds
        self._negative_ttl = negative_seconds
        self._max = max_entries
        self._cache: OrderedDict[str, tuple[float, Principal]] = OrderedDict()
        self._unknown: OrderedDict[str, float] = OrderedDict()

    def authenticate(self, key: str) -> Deferred[Principal | None]:
        if not well_formed(key):
            return succeed(None)
        digest = hash_key(key)
        at = self._clock.seconds()
        hit = self._cache.get(digest)
        if hit is not None:
            if hit[0] > at:
                return succeed(hit[1])
            del self._cache[digest]
        miss = self._unknown.get(digest)
        if miss is not None:
            if miss > at:
                return succeed(None)
            del self._unknown[digest]
        d = self._store.run_interaction("keys.lookup", principal_for_hash, digest, now(self._clock))

        def remember(found: tuple[Principal, datetime | None] | None) -> Principal | None:
            at = self._clock.seconds()
            if found is None:
                if self._negative_ttl > 0:
                    self._put(self._unknown, digest, at + self._negative_ttl)
                return None
            principal, revoked_at = found
            until = at + self._ttl
            if revoked_at is not None:  # in its rotation grace: not a moment past its end
                until = min(until, revoked_at.timestamp())
            if until > at:
                self._put(self._cache, digest, (until, principal))
            return principal

        return d.addCallback(remember)

    def _put(self, cache: OrderedDict[str, _V], digest: str, value: _V) -> None:
        cache[digest] = value
        cache.move_to_end(digest)
        while len(cache) > self._max:
            cache.popitem(last=False)
