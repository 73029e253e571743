"""API keys: issued once, stored as a SHA-256 hash, looked up with a short cache.

A key is 32 random bytes (256 bits), so a plain SHA-256 is enough to store it: there is nothing
to brute-force that a slow hash would protect. The cache keeps the hot path off the database;
a revoked key stops working within ``api.auth_cache_seconds``.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import OrderedDict

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime

from gateway.clock import now
from gateway.model import Principal
from gateway.store import Store
from gateway.store.billers import insert_api_key, principal_for_hash

KEY_PREFIX = "gw_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> tuple[str, str]:
    """(key_id, secret key). The key id is safe to log; the key is shown once."""
    return "key_" + secrets.token_hex(8), KEY_PREFIX + secrets.token_urlsafe(32)


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
    )
    return key_id, key


class Authenticator:
    def __init__(
        self, store: Store, clock: IReactorTime, cache_seconds: float, max_entries: int = 10_000
    ) -> None:
        self._store = store
        self._clock = clock
        self._ttl = cache_seconds
        self._max = max_entries
        self._cache: OrderedDict[str, tuple[float, Principal]] = OrderedDict()

    def authenticate(self, key: str) -> Deferred[Principal | None]:
        digest = hash_key(key)
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > self._clock.seconds():
            return succeed(hit[1])
        d = self._store.run_interaction("keys.lookup", principal_for_hash, digest)

        def remember(principal: Principal | None) -> Principal | None:
            if principal is not None and self._ttl > 0:
                self._cache[digest] = (self._clock.seconds() + self._ttl, principal)
                self._cache.move_to_end(digest)
                while len(self._cache) > self._max:
                    self._cache.popitem(last=False)
            return principal

        return d.addCallback(remember)
