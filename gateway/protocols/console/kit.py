"""What every console screen's routes share: the frame's context (menu, user, CSRF token), the
error pages, and :meth:`Kit.guarded`, which puts a handler behind the session, the role's
permission and, for a POST, the CSRF token.

A screen's module (gateway/protocols/console/*.py) makes its routes with a :class:`Kit`; the
menu lists :data:`SCREENS` that the user's role may open. The handlers only translate between
forms and the services: who may do what is gateway.billing.console_access's.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.billing.console_access import ROLE_LABELS, Permission, may
from gateway.billing.console_users import ConsoleUsers, Session, csrf_ok
from gateway.errors import FieldError, InvalidRequest
from gateway.protocols.api.http import Call, Response, Route
from gateway.protocols.console.web import (
    CSRF_FIELD,
    CSRF_HEADER,
    SESSION_COOKIE,
    FormError,
    Site,
    clear_cookie,
    cookie,
    form,
    multipart,
    page,
    redirect,
)

#: The menu: the permission each screen needs, its path under the console, its name.
SCREENS = [
    (Permission.DASHBOARD, "/dashboard", "ダッシュボード"),
    (Permission.BILLS, "/bills", "請求一覧"),
    (Permission.NEW_BILL, "/bills/new", "請求の登録"),
    (Permission.NEW_BILL, "/bulk", "一括登録"),
    (Permission.PAYMENTS, "/payments", "入金一覧"),
    (Permission.REFUND_CASES, "/refund-cases", "返金案件"),
    (Permission.SETTLEMENTS, "/settlements", "精算"),
    (Permission.BILLERS, "/billers", "収納企業"),
    (Permission.WEBHOOKS, "/webhooks", "Webhook"),
    (Permission.API_KEYS, "/api-keys", "APIキー"),
    (Permission.USERS, "/users", "ユーザー"),
    (Permission.SUPPORT_SEARCH, "/search", "横断検索"),
    (Permission.NETWORK, "/network", "ネットワーク"),
    (Permission.AUDIT, "/audit", "操作履歴"),
]

Guarded = Callable[[Call, Session], Awaitable[Response]]
Handler = Callable[[Call], Awaitable[Response]]


def new_form_id() -> str:
    """A one-time id for a form that changes something (gateway.billing.console_actions)."""
    return secrets.token_urlsafe(18)


class Kit:
    def __init__(self, users: ConsoleUsers, site: Site) -> None:
        self.users = users
        self.site = site
        self.root = site.root

    def context(self, session: Session | None, title: str, current: str = "") -> dict[str, Any]:
        user = session.user if session else None
        nav = []
        if user is not None and not user.must_change_password:
            nav = [
                {"href": self.root + path, "label": label, "current": path == current}
                for permission, path, label in SCREENS
                if may(user.role, permission)
            ]
            nav.append(
                {
                    "href": self.root + "/password",
                    "label": "パスワード変更",
                    "current": current == "/password",
                }
            )
        return {
            "root": self.root,
            "title": title,
            "user": user,
            "role_label": ROLE_LABELS[user.role] if user else "",
            "csrf": session.csrf if session else None,
            "nav": nav,
        }

    def screen(
        self,
        status: int,
        template: str,
        session: Session,
        title: str,
        current: str = "",
        **more: Any,
    ) -> Response:
        """A screen in the frame."""
        return page(status, template, **self.context(session, title, current), **more)

    def error(self, status: int, session: Session | None, heading: str, message: str) -> Response:
        return page(
            status, "error.html", heading=heading, message=message, **self.context(session, heading)
        )

    def not_found(self, session: Session | None) -> Response:
        return self.error(404, session, "見つかりません", "お探しのページは見つかりませんでした。")

    def forbidden(self, session: Session | None) -> Response:
        return self.error(
            403, session, "権限がありません", "この画面はお使いの役割では使えません。"
        )

    def forbidden_form(self, session: Session | None) -> Response:
        return self.error(
            403,
            session,
            "送信できませんでした",
            "フォームの有効期限が切れたか、正しくない送信です。画面を開き直してください。",
        )

    def form_error(self, session: Session | None, e: FormError) -> Response:
        return self.error(e.status, session, "送信できませんでした", e.message)

    def guarded(
        self,
        handler: Guarded,
        permission: Permission | None = None,
        first_password: bool = False,
        post: bool = False,
        forbidden: bool = False,
    ) -> Handler:
        """``handler`` for an open session only (303 to the login form otherwise); a user who
        must change the password only where ``first_password``; ``permission`` else 404 (403
        where ``forbidden``: a screen that exists, not for this role); a POST only with the
        session's CSRF token (403) — the form's ``csrf_token`` field (also in a
        ``multipart/form-data`` upload) or htmx's ``X-CSRF-Token`` header."""

        async def run(call: Call) -> Response:
            token = cookie(call, SESSION_COOKIE)
            session = await self.users.session(token) if token else None
            if session is None:
                if token:
                    clear_cookie(call, self.site, SESSION_COOKIE, self.root)
                return redirect(call, self.root + "/login")
            if session.user.must_change_password and not first_password:
                return redirect(call, self.root + "/password")
            if permission is not None and not may(session.user.role, permission):
                return self.forbidden(session) if forbidden else self.not_found(session)
            if post:
                sent = call.request.getHeader(CSRF_HEADER)
                if sent is None:
                    try:
                        sent = csrf_field(call)
                    except FormError as e:
                        return self.form_error(session, e)
                if not csrf_ok(session.token, sent):
                    return self.forbidden_form(session)
            return await handler(call, session)

        return run

    def routes(self, plain: list[tuple[bytes, str, Handler]], **more: Any) -> list[Route]:
        """``plain`` (method, path under the console, handler) as the API router's routes; a
        path parameter of the wrong shape answers as an unknown page."""
        missing = self.not_found(None)
        return [
            Route(method, "/console" + path, handler, auth=False, not_found=missing, **more)
            for method, path, handler in plain
        ]


def csrf_field(call: Call) -> str | None:
    """The ``csrf_token`` field of a form post, urlencoded or multipart."""
    ctype = (call.request.getHeader("content-type") or "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        part = multipart(call).get(CSRF_FIELD)
        return None if part is None or part.filename is not None else part.text()
    return form(call).get(CSRF_FIELD)


def field_errors(e: InvalidRequest, labels: dict[str, str]) -> list[dict[str, str]]:
    """A service's refusal as the console lists it: each field by its name on the form."""
    return [{"field": f.field, "label": _label(f, labels), "message": f.message} for f in e.errors]


def _label(f: FieldError, labels: dict[str, str]) -> str:
    base = f.field.split("[", 1)[0]
    return labels.get(f.field, labels.get(base, f.field))
