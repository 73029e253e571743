"""The console's routes on the API listener, under ``{public_url}/console/`` (docs/console.md).

- ``GET /console/login``, ``POST /console/login`` (fields ``login``, ``password``, ``otp`` and
  the form's ``csrf_token``), ``POST /console/logout``;
- ``GET``/``POST /console/password``: the password change (forced after the first login);
- ``GET /console/``: the menu of the screens the user's role opens;
- ``GET /console/bills?q=&status=&channel=&due_from=&due_to=&biller=``: the bills list;
- ``GET /console/static/console.css``, ``/console/static/htmx.min.js``;
- the other screens, one module each: a bill's page and the new-bill form (bill_screens), the
  bulk upload (bulk), payments, refund cases, settlements, the dashboard.

Every screen but the login needs an open session (else 303 to the login form); a user who must
change the password sees only the password form. Every POST carries the CSRF token (the form's
``csrf_token`` field or htmx's ``X-CSRF-Token`` header): without it, 403 and nothing done. Login
attempts are limited per client address (429) besides the per-login lock of the service. The
handlers only translate: the rules are gateway.billing.console_access's and the services'.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlencode

from prometheus_client import Counter
from twisted.internet.interfaces import IReactorTime

from gateway.billing.console_access import Permission
from gateway.billing.console_accounts import ConsoleAccounts
from gateway.billing.console_actions import ConsoleBillActions
from gateway.billing.console_billers import ConsoleBillers
from gateway.billing.console_bills import PAGE, ConsoleBills, parse_filters
from gateway.billing.console_bulk import BulkJobs
from gateway.billing.console_cases import ConsoleCases
from gateway.billing.console_center import ConsoleCenter
from gateway.billing.console_dashboard import ConsoleDashboard
from gateway.billing.console_keys import ConsoleKeys
from gateway.billing.console_payments import ConsolePayments
from gateway.billing.console_users import (
    ConsoleUsers,
    LoginResult,
    Session,
    csrf_ok,
    csrf_token,
)
from gateway.config.console import ConsoleConfig
from gateway.errors import FieldError, InvalidRequest
from gateway.money.console_fee_plans import ConsoleFeePlans
from gateway.money.console_network import ConsoleNetwork
from gateway.money.console_settlements import ConsoleSettlements
from gateway.protocols.api.http import Call, Response, Route
from gateway.protocols.api.limits import TokenBucket
from gateway.protocols.console.accounts import account_routes
from gateway.protocols.console.bill_screens import bill_routes
from gateway.protocols.console.billers import biller_routes
from gateway.protocols.console.bulk import bulk_routes
from gateway.protocols.console.cases import case_routes
from gateway.protocols.console.center import center_routes
from gateway.protocols.console.dashboard import dashboard_routes
from gateway.protocols.console.keys import key_routes
from gateway.protocols.console.kit import Handler, Kit
from gateway.protocols.console.network import network_routes
from gateway.protocols.console.payments import payment_routes
from gateway.protocols.console.settlements import settlement_routes
from gateway.protocols.console.web import (
    CSRF_FIELD,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    FormError,
    Site,
    clear_cookie,
    client_address,
    cookie,
    form,
    page,
    redirect,
    set_cookie,
)
from gateway.protocols.console.webhooks import webhook_routes
from gateway.render.console import STATIC, static_file
from gateway.webhooks.console import ConsoleWebhooks

CONSOLE_LOGINS = Counter(
    "gateway_console_logins_total",
    "Console login attempts, by result (ok, refused, locked, rate_limited, csrf).",
    ["result"],
)


@dataclass(frozen=True)
class ConsoleServices:
    """The services behind the console's screens (built by gateway.app.console)."""

    users: ConsoleUsers
    bills: ConsoleBills
    actions: ConsoleBillActions
    bulk: BulkJobs
    payments: ConsolePayments
    cases: ConsoleCases
    settlements: ConsoleSettlements
    dashboard: ConsoleDashboard
    billers: ConsoleBillers  # the center's screens (billers, fee plans)
    fee_plans: ConsoleFeePlans
    webhooks: ConsoleWebhooks  # a biller's administration (biller_admin, operator)
    keys: ConsoleKeys
    accounts: ConsoleAccounts
    center: ConsoleCenter  # the search across billers, the audit log
    network: ConsoleNetwork  # the links, files and MPN closes


def console_routes(
    services: ConsoleServices,
    config: ConsoleConfig,
    public_url: str,
    clock: IReactorTime,
) -> list[Route]:
    users, bills = services.users, services.bills
    site = Site.of(public_url)
    root = site.root
    kit = Kit(users, site)
    attempts = TokenBucket(clock, config.login_attempts_per_minute / 60.0, config.login_burst)
    context, error, guarded = kit.context, kit.error, kit.guarded
    forbidden_form = kit.forbidden_form

    # --- login, logout, password ---

    def login_form(call: Call, status: int, message: str = "", login: str = "") -> Response:
        seed = cookie(call, LOGIN_COOKIE)
        if not seed or len(seed) > 64:
            seed = secrets.token_urlsafe(24)
            set_cookie(call, site, LOGIN_COOKIE, seed, root + "/login")
        return page(
            status,
            "login.html",
            message=message,
            login=login,
            login_csrf=csrf_token(seed),
            **context(None, "ログイン"),
        )

    async def get_login(call: Call) -> Response:
        token = cookie(call, SESSION_COOKIE)
        if token and await users.session(token) is not None:
            return redirect(call, root + "/")
        return login_form(call, 200)

    async def post_login(call: Call) -> Response:
        address = client_address(call)
        wait = attempts.take(address)
        if wait is not None:
            CONSOLE_LOGINS.labels("rate_limited").inc()
            response = login_form(
                call, 429, "ログインの試行が多すぎます。しばらくしてからお試しください。"
            )
            response.headers["Retry-After"] = str(wait)
            return response
        try:
            fields = form(call)
        except FormError as e:
            return error(e.status, None, "送信できませんでした", e.message)
        seed = cookie(call, LOGIN_COOKIE)
        if not seed or not csrf_ok(seed, fields.get(CSRF_FIELD)):
            CONSOLE_LOGINS.labels("csrf").inc()
            return forbidden_form(None)
        login = fields.get("login", "").strip()[:64]
        password = fields.get("password", "")[:256]
        code = fields.get("otp", "").strip() or None
        done = await users.login(login, password, code, address)
        CONSOLE_LOGINS.labels(done.result.value).inc()
        if done.result is LoginResult.LOCKED:
            return login_form(
                call,
                429,
                "ログインに続けて失敗したため、しばらくログインできません。",
                login if len(login) <= 32 else "",
            )
        if done.result is not LoginResult.OK or done.token is None:
            return login_form(
                call,
                401,
                "ログインID、パスワードまたは確認コードが違います。",
                login if len(login) <= 32 else "",
            )
        set_cookie(call, site, SESSION_COOKIE, done.token, root)
        clear_cookie(call, site, LOGIN_COOKIE, root + "/login")
        return redirect(call, root + ("/password" if done.must_change_password else "/"))

    async def logout(call: Call, session: Session) -> Response:
        await users.logout(session)
        clear_cookie(call, site, SESSION_COOKIE, root)
        return redirect(call, root + "/login")

    def password_form(
        session: Session, status: int = 200, errors: tuple[FieldError, ...] = ()
    ) -> Response:
        return page(
            status,
            "password.html",
            errors=list(errors),
            **context(session, "パスワードの変更", "/password"),
        )

    async def get_password(call: Call, session: Session) -> Response:
        return password_form(session)

    async def post_password(call: Call, session: Session) -> Response:
        try:
            fields = form(call)
        except FormError as e:
            return error(e.status, session, "送信できませんでした", e.message)
        try:
            await users.change_password(
                session,
                fields.get("current_password", "")[:256],
                fields.get("new_password", "")[:256],
                fields.get("confirm_password", "")[:256],
            )
        except InvalidRequest as e:
            return password_form(session, 422, e.errors)
        return redirect(call, root + "/?changed=1")

    async def home(call: Call, session: Session) -> Response:
        notice = "パスワードを変更しました。" if call.query("changed") == "1" else ""
        return page(200, "home.html", notice=notice, **context(session, "トップ", "/"))

    async def bare_root(call: Call) -> Response:
        return redirect(call, root + "/")

    # --- bills ---

    async def bill_list(call: Call, session: Session) -> Response:
        names = ("q", "status", "channel", "due_from", "due_to", "biller", "before")
        query = {name: call.query(name) or "" for name in names}
        shown = {name: query[name] for name in names if name != "before"}
        center = session.user.biller_id is None
        ctx = context(session, "請求一覧", "/bills")
        try:
            filters = parse_filters(query, session.user)
        except InvalidRequest as e:
            return page(
                400,
                "bills.html",
                form=shown,
                errors=list(e.errors),
                page=None,
                center=center,
                billers={},
                next_query="",
                page_size=PAGE,
                **ctx,
            )
        found = await bills.page(session.user, filters)
        following = {k: v for k, v in shown.items() if v}
        if found.next_before is not None:
            following["before"] = str(found.next_before)
        return page(
            200,
            "bills.html",
            form=shown,
            errors=[],
            page=found,
            center=center,
            billers=found.billers,
            next_query=urlencode(following),
            page_size=PAGE,
            **ctx,
        )

    # --- static files ---

    def static(name: str) -> Callable[[Call], Awaitable[Response]]:
        body = static_file(name)

        async def serve(call: Call) -> Response:
            return Response(200, body, STATIC[name], {"Cache-Control": "private, max-age=3600"})

        return serve

    plain: list[tuple[bytes, str, Handler]] = [
        (b"GET", "", bare_root),
        (b"GET", "/", guarded(home)),
        (b"GET", "/login", get_login),
        (b"POST", "/login", post_login),
        (b"POST", "/logout", guarded(logout, first_password=True, post=True)),
        (b"GET", "/password", guarded(get_password, first_password=True)),
        (b"POST", "/password", guarded(post_password, first_password=True, post=True)),
        (b"GET", "/bills", guarded(bill_list, Permission.BILLS)),
    ]
    plain += [(b"GET", f"/static/{name}", static(name)) for name in STATIC]
    return (
        kit.routes(plain)
        + bill_routes(kit, bills, services.actions)
        + bulk_routes(kit, services.bulk, services.actions)
        + payment_routes(kit, services.payments)
        + case_routes(kit, services.cases)
        + settlement_routes(kit, services.settlements)
        + dashboard_routes(kit, services.dashboard)
        + biller_routes(kit, services.billers, services.fee_plans)
        + webhook_routes(kit, services.webhooks)
        + key_routes(kit, services.keys)
        + account_routes(kit, services.accounts)
        + center_routes(kit, services.center)
        + network_routes(kit, services.network)
    )
