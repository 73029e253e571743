"""The console's users, logins and sessions over HTTP, through the real service (in this
process): the one-time password and its change, cookies, CSRF, the per-login lock and the
per-address limit, TOTP, a disabled user's session, biller isolation, and the audit log of it
all. The same in a real browser: tests/test_console_e2e.py."""

from __future__ import annotations

import re
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlencode

import pyotp
import pytest_twisted
import treq

from gateway.model import MessageKind
from tests.billing.test_payments_api import pay
from tests.conftest import Running, admin
from tests.test_api import bill_body

PASSWORD = "correct-horse-battery-staple"


class Client:
    """A browser, as far as cookies and forms go: no redirects followed."""

    def __init__(self, gateway: Running) -> None:
        self.base = gateway.api
        self.cookies: dict[str, str] = {}
        self.set_cookie: list[str] = []

    async def request(
        self, method: str, path: str, fields: dict[str, str] | None = None, **headers: str
    ) -> tuple[int, str, Any]:
        h = {k.replace("_", "-"): v for k, v in headers.items()}
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        data = None
        if fields is not None:
            data = urlencode(fields).encode()
            h.setdefault("Content-Type", "application/x-www-form-urlencoded")
        resp = await treq.request(
            method, self.base + path, headers=h, data=data, allow_redirects=False
        )
        body = (await resp.content()).decode()
        self.set_cookie = resp.headers.getRawHeaders("set-cookie", [])
        for line in self.set_cookie:
            parsed = SimpleCookie()
            parsed.load(line)
            for name, morsel in parsed.items():
                if morsel["max-age"] == "0":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return resp.code, body, resp.headers

    async def get(self, path: str, **headers: str) -> tuple[int, str, Any]:
        return await self.request("GET", path, **headers)

    async def post(self, path: str, fields: dict[str, str], **headers: str) -> tuple[int, str, Any]:
        return await self.request("POST", path, fields, **headers)

    async def login(self, login: str, password: str, otp: str = "") -> tuple[int, str, Any]:
        _, body, _ = await self.get("/console/login")
        fields = {"csrf_token": csrf_of(body), "login": login, "password": password}
        if otp:
            fields["otp"] = otp
        return await self.post("/console/login", fields)

    async def form_csrf(self, path: str) -> str:
        status, body, _ = await self.get(path)
        assert status == 200, (path, status)
        return csrf_of(body)


def csrf_of(body: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', body)
    assert found, "no CSRF token in the form"
    return found.group(1)


def location(headers: Any) -> str:
    return str(headers.getRawHeaders("location", [""])[0])


def make_user(gateway: Running, login: str, role: str, biller: str | None = None) -> str:
    args = ["user", "create", "--login", login, "--role", role]
    if biller:
        args += ["--biller", biller]
    made = admin(gateway.config_path, *args)
    assert made["must_change_password"] is True
    return str(made["password"])


async def logged_in(gateway: Running, login: str, role: str, biller: str | None = None) -> Client:
    """A user who logged in and changed the one-time password."""
    client = Client(gateway)
    first = make_user(gateway, login, role, biller)
    status, _, headers = await client.login(login, first)
    assert status == 303 and location(headers) == "/console/password"
    csrf = await client.form_csrf("/console/password")
    fields = {
        "csrf_token": csrf,
        "current_password": first,
        "new_password": PASSWORD,
        "confirm_password": PASSWORD,
    }
    status, _, headers = await client.post("/console/password", fields)
    assert status == 303, status
    return client


def audit(gateway: Running, *args: str) -> list[dict[str, Any]]:
    return list(admin(gateway.config_path, "audit", "list", *args)["data"])


@pytest_twisted.ensureDeferred
async def test_first_login_must_change_the_one_time_password(gateway: Running) -> None:
    gateway.onboard("acme")
    first = make_user(gateway, "clerk", "biller_staff", "acme")
    client = Client(gateway)

    status, body, headers = await client.get("/console/bills")
    assert status == 303 and location(headers) == "/console/login"
    status, body, headers = await client.get("/console/login")
    assert status == 200 and 'name="login"' in body and 'name="password"' in body
    assert "default-src 'none'" in headers.getRawHeaders("content-security-policy")[0]

    status, body, headers = await client.login("clerk", first)
    assert status == 303 and location(headers) == "/console/password"
    cookie = next(c for c in client.set_cookie if c.startswith("gw_console="))
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
    assert "Path=/console;" in cookie
    assert "Secure" not in cookie  # public_url is http://127.0.0.1 here

    # Until the password is changed, every screen sends to the password form.
    status, _, headers = await client.get("/console/bills")
    assert status == 303 and location(headers) == "/console/password"
    status, body, _ = await client.get("/console/password")
    assert "初回ログイン" in body
    csrf = csrf_of(body)

    bad = {"csrf_token": csrf, "current_password": first}
    status, body, _ = await client.post(
        "/console/password", {**bad, "new_password": "short", "confirm_password": "short"}
    )
    assert status == 422 and "12文字以上にしてください" in body
    status, body, _ = await client.post(
        "/console/password", {**bad, "new_password": first, "confirm_password": first}
    )
    assert status == 422 and "現在と違うパスワードにしてください" in body
    status, _, headers = await client.post(
        "/console/password", {**bad, "new_password": PASSWORD, "confirm_password": PASSWORD}
    )
    assert status == 303
    status, body, _ = await client.get("/console/bills")
    assert status == 200 and "請求一覧" in body

    # The one-time password no longer opens a session; the new one does.
    other = Client(gateway)
    assert (await other.login("clerk", first))[0] == 401
    status, _, headers = await other.login("clerk", PASSWORD)
    assert status == 303 and location(headers) == "/console/"

    actions = [line["action"] for line in audit(gateway, "--target", "console_user:clerk")]
    assert actions == [
        "console.login",
        "console.login_failed",
        "console_user.password",
        "console.login",
        "console_user.create",
    ]
    listed = admin(gateway.config_path, "user", "list", "--biller", "acme")["users"]
    assert [(u["login"], u["must_change_password"]) for u in listed] == [("clerk", False)]
    assert "password" not in listed[0] and "hash" not in str(listed[0])


@pytest_twisted.ensureDeferred
async def test_a_post_without_its_csrf_token_is_refused(gateway: Running) -> None:
    gateway.onboard("acme")
    client = await logged_in(gateway, "clerk", "biller_staff", "acme")

    status, body, _ = await client.post("/console/logout", {})
    assert status == 403 and "送信できませんでした" in body
    status, _, _ = await client.post("/console/logout", {"csrf_token": "0" * 64})
    assert status == 403
    assert (await client.get("/console/bills"))[0] == 200  # still logged in

    # The login form too: its token belongs to the cookie the form was sent with.
    stranger = Client(gateway)
    status, _, _ = await stranger.post("/console/login", {"login": "clerk", "password": PASSWORD})
    assert status == 403

    csrf = await client.form_csrf("/console/bills")
    status, _, headers = await client.post("/console/logout", {}, x_csrf_token=csrf)  # htmx's
    assert status == 303 and location(headers) == "/console/login"
    assert (await client.get("/console/bills"))[0] == 303
    assert audit(gateway, "--target", "console_user:clerk")[0]["action"] == "console.logout"


@pytest_twisted.ensureDeferred
async def test_wrong_passwords_lock_the_login_and_are_audited(gateway: Running) -> None:
    gateway.onboard("acme")
    make_user(gateway, "clerk", "biller_staff", "acme")
    client = Client(gateway)
    for _ in range(4):
        assert (await client.login("clerk", "wrong-password-0"))[0] == 401
    status, body, _ = await client.login("clerk", "wrong-password-0")
    assert status == 429 and "しばらくログインできません" in body
    lines = audit(gateway, "--target", "console_user:clerk", "--action", "console.login_failed")
    assert [line["after"]["reason"] for line in lines][:2] == ["password", "password"]
    assert "locked_until" in lines[0]["after"]
    assert all("wrong-password" not in str(line) for line in lines)  # never the password
    assert (await client.login("nobody", "whatever-it-is"))[0] == 401
    unknown = audit(gateway, "--target", "console_user:unknown")
    assert unknown[0]["after"]["reason"] == "unknown_login"


def test_https_public_url_makes_the_cookies_secure() -> None:
    from gateway.protocols.console.web import Site

    assert Site.of("https://pay.example.jp") == Site("/console", True)
    assert Site.of("https://pay.example.jp/center/") == Site("/center/console", True)
    assert Site.of("http://127.0.0.1:8080") == Site("/console", False)


@pytest_twisted.ensureDeferred
async def test_a_disabled_user_is_logged_out_at_once(gateway: Running) -> None:
    gateway.onboard("acme")
    client = await logged_in(gateway, "clerk", "biller_staff", "acme")
    other = Client(gateway)
    assert (await other.login("clerk", PASSWORD))[0] == 303
    assert (await client.get("/console/bills"))[0] == 200

    done = admin(gateway.config_path, "user", "disable", "--login", "clerk")
    assert done["disabled_at"] is not None and done["sessions_ended"] == 2

    for browser in (client, other):
        status, _, headers = await browser.get("/console/bills")
        assert status == 303 and location(headers) == "/console/login"
    status, _, headers = await client.get("/console/bills", hx_request="true")  # htmx's poll
    assert status == 200 and headers.getRawHeaders("hx-redirect") == ["/console/login"]
    assert (await Client(gateway).login("clerk", PASSWORD))[0] == 401
    line = audit(gateway, "--target", "console_user:clerk", "--action", "console_user.disable")[0]
    assert line["actor"].startswith("cli:") and line["after"]["sessions_ended"] == 2


@pytest_twisted.ensureDeferred
async def test_totp_for_a_center_user(gateway: Running) -> None:
    made = admin(
        gateway.config_path, "user", "create", "--login", "op", "--role", "operator", "--totp"
    )
    secret = re.search(r"secret=([A-Z2-7]+)", made["totp_uri"])
    assert secret
    client = Client(gateway)
    assert (await client.login("op", made["password"]))[0] == 401  # no code
    assert (await client.login("op", made["password"], "000000"))[0] == 401
    code = pyotp.TOTP(secret.group(1)).now()
    status, _, headers = await client.login("op", made["password"], code)
    assert status == 303 and location(headers) == "/console/password"
    listed = admin(gateway.config_path, "user", "list")["users"]
    assert listed[0]["totp"] is True and secret.group(1) not in str(listed)


@pytest_twisted.ensureDeferred
async def test_a_billers_user_never_sees_another_billers_bill(gateway: Running) -> None:
    acme, beta = gateway.onboard("acme"), gateway.onboard("beta")
    body = bill_body("SAME-1")
    body["customer"] = {"customer_no": "C-1", "name": "山田 太郎"}
    _, mine, _ = await gateway.request("POST", "/v1/bills", acme, body)
    _, theirs, _ = await gateway.request("POST", "/v1/bills", beta, body)
    _, only_theirs, _ = await gateway.request("POST", "/v1/bills", beta, bill_body("BETA-2"))
    assert pay(gateway, theirs["cvs"]["barcode"], MessageKind.PRELIMINARY) == "applied"

    clerk = await logged_in(gateway, "clerk", "biller_staff", "acme")
    center = await logged_in(gateway, "desk", "support", None)
    for q in ("SAME-1", "C-1", theirs["cvs"]["barcode"], theirs["payeasy"]["customer_number"]):
        _, page, _ = await clerk.get("/console/bills?" + urlencode({"q": q, "biller": "beta"}))
        assert "/console/bills/beta/" not in page, q
        _, page, _ = await center.get("/console/bills?" + urlencode({"q": q}))
        assert "/console/bills/beta/SAME-1" in page, q
    _, page, _ = await clerk.get("/console/bills?q=SAME-1")
    assert "/console/bills/acme/SAME-1" in page
    for path in ("/console/bills/beta/SAME-1", "/console/bills/beta/BETA-2/timeline"):
        status, page, _ = await clerk.get(path)
        assert status == 404 and theirs["cvs"]["human_readable"] not in page
    status, page, _ = await center.get("/console/bills/beta/BETA-2")
    assert status == 200 and only_theirs["cvs"]["human_readable"] in page
    status, page, _ = await center.get("/console/bills/acme/SAME-1")
    assert status == 200 and mine["payeasy"]["customer_number"] in page

    finance = await logged_in(gateway, "books", "finance", None)  # no bills screen
    assert (await finance.get("/console/bills"))[0] == 404


@pytest_twisted.ensureDeferred
async def test_the_bills_list_filters_and_pages(gateway: Running) -> None:
    from gateway.billing.console_bills import PAGE

    acme = gateway.onboard("acme")
    for n in range(PAGE + 2):
        body = bill_body(f"B-{n:03d}")
        if n % 2:
            body["channels"] = ["payeasy"]
        status, made, _ = await gateway.request("POST", "/v1/bills", acme, body)
        assert status == 201, made
        if n == 0:
            first = made
    assert pay(gateway, first["cvs"]["barcode"], MessageKind.PRELIMINARY) == "applied"
    clerk = await logged_in(gateway, "clerk", "biller_staff", "acme")

    def numbers(page: str) -> list[str]:
        return re.findall(r'href="/console/bills/acme/([^"]+)"', page)

    _, page, _ = await clerk.get("/console/bills")
    shown = numbers(page)
    assert len(shown) == PAGE and shown[0] == f"B-{PAGE + 1:03d}"  # newest first
    following = re.search(r'id="next" href="([^"]+)"', page)
    assert following
    _, page, _ = await clerk.get(following.group(1).replace("&amp;", "&"))
    assert numbers(page) == ["B-001", "B-000"]

    _, page, _ = await clerk.get("/console/bills?status=paid")
    assert numbers(page) == ["B-000"] and "入金済（速報）" in page
    _, page, _ = await clerk.get("/console/bills?channel=cvs&status=open")
    assert numbers(page) and all(int(n[2:]) % 2 == 0 for n in numbers(page))
    assert "B-000" not in numbers(page)
    _, page, _ = await clerk.get(f"/console/bills?due_from={first['due_date']}&status=expired")
    assert numbers(page) == [] and 'id="empty"' in page
    _, page, _ = await clerk.get(
        f"/console/bills?due_from={first['due_date']}&due_to={first['due_date']}&q=B-001"
    )
    assert numbers(page) == ["B-001"]
    status, page, _ = await clerk.get("/console/bills?due_from=tomorrow&status=lost")
    assert status == 400
    assert "日付は YYYY-MM-DD で入力してください" in page and "状態を一覧から選んでください" in page


def test_the_access_log_keeps_no_console_search() -> None:
    from gateway.protocols.api.access_log import mask_page_tokens

    line = b'"GET /console/bills?q=C-1001&status=open HTTP/1.1" 200 - "http://h/console/bills?q=X"'
    assert mask_page_tokens(line) == (
        b'"GET /console/bills?**** HTTP/1.1" 200 - "http://h/console/bills?****"'
    )
    assert mask_page_tokens(b"GET /v1/bills?status=open HTTP/1.1") == (
        b"GET /v1/bills?status=open HTTP/1.1"
    )


@pytest_twisted.ensureDeferred
async def test_a_bill_whose_amount_the_payer_chooses_shows_its_range(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    body = bill_body("GIFT-1")
    body.update(amount=None, min_amount=1000, max_amount=50000, channels=["payeasy"])
    body.pop("tax", None)
    status, made, _ = await gateway.request("POST", "/v1/bills", acme, body)
    assert status == 201, made
    clerk = await logged_in(gateway, "clerk", "biller_staff", "acme")
    for path in ("/console/bills", "/console/bills/acme/GIFT-1"):
        _, page, _ = await clerk.get(path)
        assert "¥1,000〜¥50,000" in page, path
