"""The console's bulk upload (docs/console.md): a CSV file of bills registered in the background
by the bulk API's own service (:class:`gateway.billing.bulk.BulkService`, all or none), while
the page shows how far it has gone and, at the end, the result file or the errors.

- **A job** is one uploaded file. Its id is the batch id it will be stored under, chosen at the
  upload, so that its result is found in the store (``bill_batches``) by any daemon once the
  file is registered, whatever daemon took it.
- **Progress** (:attr:`BulkJob.percent`): the rows checked count for the first half, the bills
  stored for the second; ``done`` with the summary (rows, created, existing) or ``refused``
  with every bad row and field and the errors CSV. While the file is being checked and stored,
  only the daemon that took it knows how far it is; a job no daemon knows and no batch holds
  (the daemon stopped before the commit: nothing was stored, the file as a whole) is
  ``lost``, and the page says to upload it again.
- **Who**: a user who may register bills (:data:`Permission.NEW_BILL`) of the job's biller;
  another biller's job is :class:`NotFound`, as an unknown one.
- **Audit**: ``bills.bulk_upload`` (target ``batch:<id>``) in the file's own transaction, with
  the file's name and size and its summary; a refused file stores nothing and writes no line.
- At most :data:`MAX_KEPT` jobs are kept in memory, finished ones for :data:`KEEP_FOR`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from gateway.billing.actors import console_actor
from gateway.billing.bulk import MAX_BYTES, BulkService
from gateway.billing.console_access import ConsoleUser, Permission, may_for
from gateway.clock import now as clock_now
from gateway.errors import FieldError, InvalidRequest, NotFound
from gateway.mappers.bills_csv import SHIFT_JIS, UTF8
from gateway.store.audit import record
from gateway.store.batches import get_batch

log = Logger()

MAX_KEPT = 200  # jobs kept in memory
KEEP_FOR = timedelta(hours=2)  # a finished job's page is answered from memory this long
MAX_ERRORS_SHOWN = 100  # a refused file's errors listed on the page (the CSV has them all)
RESULT_ENCODINGS = {"utf-8": UTF8, "shift_jis": SHIFT_JIS}


@dataclass
class BulkJob:
    batch_id: str
    biller_id: str
    login: str
    file_name: str
    size: int
    started_at: datetime
    state: str = "checking"  # checking, storing, done, refused, failed, lost
    rows: int = 0
    checked: int = 0
    new_bills: int = 0
    stored: int = 0
    summary: dict[str, Any] | None = None
    errors: list[FieldError] = field(default_factory=list)
    error_count: int = 0
    errors_csv: bytes = b""
    finished_at: datetime | None = None

    @property
    def percent(self) -> int:
        if self.state == "done":
            return 100
        if self.state == "checking":
            return self.checked * 50 // self.rows if self.rows else 0
        if self.state == "storing":
            return 50 + (self.stored * 50 // self.new_bills if self.new_bills else 0)
        return 0

    @property
    def finished(self) -> bool:
        return self.state in ("done", "refused", "failed", "lost")

    def progress(self, stage: str, done: int, of: int) -> None:
        """Told by the bulk service (from its worker and store threads) how far it is."""
        if stage == "check":
            self.rows, self.checked = of, done
        else:
            self.state, self.new_bills, self.stored = "storing", of, done

    def view(self) -> dict[str, Any]:
        """What the page shows."""
        return {
            "batch_id": self.batch_id,
            "biller_id": self.biller_id,
            "file_name": self.file_name,
            "size": self.size,
            "started_at": self.started_at,
            "state": self.state,
            "percent": self.percent,
            "rows": self.rows,
            "checked": self.checked,
            "new_bills": self.new_bills,
            "stored": self.stored,
            "summary": self.summary,
            "errors": self.errors[:MAX_ERRORS_SHOWN],
            "error_count": self.error_count,
            "finished": self.finished,
        }


def file_problem(name: str, data: bytes) -> str | None:
    """Why an upload is not a file to register (before anything is read), or None."""
    if not data:
        return "ファイルを選んでください"
    if len(data) > MAX_BYTES:
        return f"ファイルが大きすぎます（{MAX_BYTES // (1024 * 1024)} MB まで）"
    return None


class BulkJobs:
    """The console's uploads: started in the background, asked for by the page's polls."""

    def __init__(self, bulk: BulkService, clock: IReactorTime) -> None:
        self.bulk = bulk
        self.store = bulk.store
        self.clock = clock
        self.jobs: dict[str, BulkJob] = {}
        self.running: dict[str, Deferred[None]] = {}

    def start(self, user: ConsoleUser, biller_id: str, file_name: str, data: bytes) -> BulkJob:
        """A new job for ``data`` (the caller checked :func:`file_problem`), running now."""
        if not may_for(user, Permission.NEW_BILL, biller_id):
            raise NotFound(f"biller {biller_id}")
        self._forget_old()
        batch_id = self.bulk.new_batch_id()
        job = BulkJob(
            batch_id, biller_id, user.login, file_name[:200], len(data), clock_now(self.clock)
        )
        self.jobs[batch_id] = job
        d = Deferred.fromCoroutine(self._run(job, data))
        self.running[batch_id] = d

        def forget(_: object) -> None:
            self.running.pop(batch_id, None)

        d.addBoth(forget)
        return job

    async def _run(self, job: BulkJob, data: bytes) -> None:
        actor = console_actor(job.login)
        digest = hashlib.sha256(data).hexdigest()

        def audit(conn: Connection, summary: Mapping[str, Any]) -> None:
            record(
                conn,
                actor,
                "bills.bulk_upload",
                f"batch:{job.batch_id}",
                clock_now(self.clock),
                biller_id=job.biller_id,
                after={
                    "file_name": job.file_name,
                    "bytes": job.size,
                    "sha256": digest,
                    **{k: summary[k] for k in ("batch_id", "rows", "created", "existing")},
                },
            )

        try:
            stored = await self.bulk.register(
                job.biller_id,
                data,
                None,
                None,  # the same file twice finds its bills "existing": no claim needed
                f"console:{job.file_name}",
                batch_id=job.batch_id,
                progress=job.progress,
                audit=audit,
            )
        except InvalidRequest as e:
            job.state = "refused"
            job.errors = list(e.errors)
            job.error_count = len(e.errors)
            job.errors_csv = self.bulk.errors_file(e, data)
        except Exception:
            log.failure("console bulk upload {batch_id} failed", batch_id=job.batch_id)
            job.state = "failed"
        else:
            job.summary = json.loads(stored.body)
            job.state = "done"
        job.finished_at = clock_now(self.clock)

    def _forget_old(self) -> None:
        now = clock_now(self.clock)
        for batch_id, job in list(self.jobs.items()):
            if job.finished_at is not None and now - job.finished_at > KEEP_FOR:
                del self.jobs[batch_id]
        while len(self.jobs) >= MAX_KEPT:
            oldest = min(
                (j for j in self.jobs.values() if j.finished),
                key=lambda j: j.started_at,
                default=None,
            )
            if oldest is None:
                break
            del self.jobs[oldest.batch_id]

    async def job(self, user: ConsoleUser, batch_id: str) -> dict[str, Any]:
        """The job's view: from memory, or, for a file stored by another daemon (or before a
        restart), from its batch; a job of another biller, or none, :class:`NotFound`."""
        job = self.jobs.get(batch_id)
        if job is not None:
            if not may_for(user, Permission.NEW_BILL, job.biller_id):
                raise NotFound(f"upload {batch_id}")
            return job.view()
        if user.biller_id is None:
            raise NotFound(f"upload {batch_id}")  # a center user's job is always in memory
        batch = await self.store.run_interaction(
            "console.bulk_job", get_batch, user.biller_id, batch_id
        )
        if batch is None:
            raise NotFound(f"upload {batch_id}")
        summary = {
            "batch_id": batch.batch_id,
            "rows": batch.rows,
            "created": batch.created,
            "existing": batch.existing,
        }
        stored = BulkJob(
            batch_id, batch.biller_id, "", "", 0, batch.created_at, "done", summary=summary
        )
        stored.rows = stored.checked = batch.rows
        return stored.view()

    async def result(
        self, user: ConsoleUser, batch_id: str, encoding: str | None
    ) -> tuple[bytes, str]:
        """The batch's result file (the bulk API's, in UTF-8 or Shift_JIS) and its charset."""
        biller_id = await self._biller_of(user, batch_id)
        chosen = RESULT_ENCODINGS.get(encoding or "utf-8", UTF8)
        data, used = await self.bulk.result_csv(biller_id, batch_id, chosen)
        return data, "utf-8" if used == UTF8 else "Shift_JIS"

    def errors_csv(self, user: ConsoleUser, batch_id: str) -> bytes:
        job = self.jobs.get(batch_id)
        if job is None or job.state != "refused":
            raise NotFound(f"upload {batch_id}")
        if not may_for(user, Permission.NEW_BILL, job.biller_id):
            raise NotFound(f"upload {batch_id}")
        return job.errors_csv

    async def _biller_of(self, user: ConsoleUser, batch_id: str) -> str:
        job = self.jobs.get(batch_id)
        biller_id = job.biller_id if job is not None else user.biller_id
        if biller_id is None or not may_for(user, Permission.NEW_BILL, biller_id):
            raise NotFound(f"upload {batch_id}")
        return biller_id
