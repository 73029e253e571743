"""At the daemon's start: what migration 0009 could not do without ``[secrets] key``.

Bills made before 0009 get the hash of their derived page token (the URL the API shows now;
their old token still opens the page), and webhook secrets stored in clear are encrypted. Both
run once, in batches, and are idempotent: a daemon stopped half-way finishes at its next start.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from gateway.infra.secretbox import SecretBox
from gateway.store import Store
from gateway.store.migrate import schema_is_current
from gateway.store.pages import bills_without_token_hash, set_token_hashes
from gateway.store.webhooks import plain_secrets, set_secret

log = Logger()
BATCH = 500
SECRET_COLUMN = 100  # webhook_endpoints.secret


def _forget_old_pages(engine: Engine) -> None:
    """SQLite: copy the WAL into the database and empty it, so the pages that held the plain
    values are gone from the WAL too (secure_delete has zeroed them in the file). Outside any
    transaction, which would hold the old pages."""
    if engine.dialect.name == "sqlite":
        raw = engine.raw_connection()
        try:
            raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()


class SecretsAtRest(Service):
    name = "secrets-at-rest"

    def __init__(self, store: Store, box: SecretBox) -> None:
        self.store = store
        self.box = box
        self.done: Deferred[None] | None = None

    def startService(self) -> None:
        super().startService()

        def failed(failure: Failure) -> None:
            log.failure("secrets at rest: the upgrade after migration 0009 failed", failure)

        self.done = Deferred.fromCoroutine(self.upgrade()).addErrback(failed)

    async def upgrade(self) -> None:
        if not await self.store.run_interaction("at_rest.schema", schema_is_current):
            log.warn("secrets at rest: the schema is not current: restart after the migration")
            return
        bills = 0
        while self.running:
            todo: list[tuple[int, str, str]] = await self.store.run_interaction(
                "at_rest.bills", bills_without_token_hash, BATCH
            )
            if not todo:
                break
            hashes = [(pk, self.box.stored_page_token(b, no)) for pk, b, no in todo]
            await self.store.run_interaction("at_rest.set_tokens", set_token_hashes, hashes)
            bills += len(todo)
        found: list[tuple[int, str, str]] = await self.store.run_interaction(
            "at_rest.secrets", plain_secrets
        )
        for pk, endpoint_id, plain in found:
            sealed = self.box.encrypt(plain, endpoint_id)
            if len(sealed) > SECRET_COLUMN:  # not one the gateway issued (whsec_ + 43)
                log.warn(
                    "secrets at rest: the secret of {id} is too long to encrypt", id=endpoint_id
                )
                continue
            await self.store.run_interaction("at_rest.set_secret", set_secret, pk, plain, sealed)
        if bills or found:
            _forget_old_pages(self.store.engine)  # once, after an upgrade: milliseconds
            log.info(
                "secrets at rest: {bills} page tokens hashed, {secrets} webhook secrets encrypted",
                bills=bills,
                secrets=len(found),
            )

    def stopService(self) -> Any:
        super().stopService()
        return self.done
