"""The console's bulk upload (docs/console.md): a CSV file of bills, its progress and its result.

- ``GET /console/bulk``: the upload form (a ``multipart/form-data`` post with the CSRF token;
  a center operator chooses the biller);
- ``POST /console/bulk``: the file goes to gateway.billing.console_bulk, which registers it in
  the background; 303 to the job's page;
- ``GET /console/bulk/{batch_id}``: the job's page, whose progress bar htmx asks for again
  every second (``…/progress``) until the file is registered or refused;
- ``GET /console/bulk/{batch_id}/result.csv?charset=utf-8|shift_jis``: the bulk API's result
  file (each row's bill, barcode, Pay-easy numbers and payment page); ``…/errors.csv``: the
  errors of a refused file (row, column, message).
"""

from __future__ import annotations

import codecs

from gateway.billing.bulk import MAX_BYTES
from gateway.billing.console_access import Permission, acting_biller
from gateway.billing.console_actions import ConsoleBillActions
from gateway.billing.console_bulk import BulkJobs, file_problem
from gateway.billing.console_users import Session
from gateway.errors import NotFound
from gateway.mappers.bills_csv import COLUMNS
from gateway.protocols.api.http import Call, Response, Route
from gateway.protocols.console.kit import Kit
from gateway.protocols.console.web import FormError, html, multipart, page, redirect
from gateway.render.console import PAGE_HEADERS

POLL_SECONDS = 1  # how often the job's page asks for its progress


def csv_file(name: str, data: bytes, charset: str) -> Response:
    return Response(
        200,
        data,
        f"text/csv; charset={charset}",
        {**PAGE_HEADERS, "Content-Disposition": f'attachment; filename="{name}"'},
    )


def bulk_routes(kit: Kit, jobs: BulkJobs, actions: ConsoleBillActions) -> list[Route]:
    root = kit.root

    async def upload_form(session: Session, status: int = 200, problem: str = "") -> Response:
        options = await actions.form_options(session.user)
        return kit.screen(
            status,
            "bulk.html",
            session,
            "一括登録",
            "/bulk",
            options=options,
            problem=problem,
            columns=COLUMNS,
            max_mb=MAX_BYTES // (1024 * 1024),
        )

    async def get_form(call: Call, session: Session) -> Response:
        return await upload_form(session)

    async def post_file(call: Call, session: Session) -> Response:
        try:
            parts = multipart(call)
        except FormError as e:
            return kit.form_error(session, e)
        chosen = parts.get("biller")
        biller_id = acting_biller(session.user, chosen.text() if chosen else None)
        if biller_id is None:
            return await upload_form(session, 422, "収納企業を選んでください")
        upload = parts.get("file")
        name = (upload.filename or "") if upload else ""
        data = upload.data if upload and upload.filename is not None else b""
        problem = file_problem(name, data)
        if problem is not None:
            return await upload_form(session, 422, problem)
        try:
            job = jobs.start(session.user, biller_id, name, data)
        except NotFound:
            return await upload_form(session, 422, "この収納企業には登録できません")
        return redirect(call, f"{root}/bulk/{job.batch_id}")

    async def job_page(call: Call, session: Session) -> Response:
        try:
            job = await jobs.job(session.user, call.params["batch_id"])
        except NotFound:
            return kit.not_found(session)
        return kit.screen(
            200, "bulk_job.html", session, "一括登録の状況", "/bulk", job=job, poll=POLL_SECONDS
        )

    async def progress(call: Call, session: Session) -> Response:
        try:
            job = await jobs.job(session.user, call.params["batch_id"])
        except NotFound:
            return html(404, "")
        return page(200, "_bulk_progress.html", job=job, root=root, poll=POLL_SECONDS)

    async def result(call: Call, session: Session) -> Response:
        batch_id = call.params["batch_id"]
        try:
            data, charset = await jobs.result(session.user, batch_id, call.query("charset"))
        except NotFound:
            return kit.not_found(session)
        return csv_file(f"{batch_id}.result.csv", data, charset)

    async def errors(call: Call, session: Session) -> Response:
        batch_id = call.params["batch_id"]
        try:
            data = jobs.errors_csv(session.user, batch_id)
        except NotFound:
            return kit.not_found(session)
        charset = "utf-8" if data.startswith(codecs.BOM_UTF8) else "Shift_JIS"
        return csv_file(f"{batch_id}.errors.csv", data, charset)

    g = kit.guarded
    need = Permission.NEW_BILL
    return kit.routes(
        [(b"POST", "/bulk", g(post_file, need, post=True))], takes_file=True
    ) + kit.routes(
        [
            (b"GET", "/bulk", g(get_form, need)),
            (b"GET", "/bulk/{batch_id}", g(job_page, need)),
            (b"GET", "/bulk/{batch_id}/progress", g(progress, need)),
            (b"GET", "/bulk/{batch_id}/result.csv", g(result, need)),
            (b"GET", "/bulk/{batch_id}/errors.csv", g(errors, need)),
        ]
    )
