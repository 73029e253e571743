"""The customer's payment page and the e-receipts, through the real service on a real socket.

What the page shows is read back from its HTML (html.parser), the barcode from its SVG with a
real reader (rsvg-convert + zbarimg, as tests/render/test_barcode_svg.py does) and the receipts with
pdftotext (as tests/render/test_receipts.py does). Payments arrive through the ingest
(tests/test_payments_api.pay_at_store), as the CVS network delivers them.
"""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest_twisted
import treq
from sqlalchemy import update
from twisted.logger import globalLogPublisher

from gateway.billing.expiry import ExpiryJob
from gateway.billing.pages import payment_place, receipt_number
from gateway.model import JST, Channel, MessageKind, Payment, PaymentStatus
from gateway.networks.registry import REGISTRY
from gateway.store import Store, create_db_engine
from gateway.store.schema import bills
from simulators.zengin import SimulatedBank
from tests.billing.test_payments_api import pay
from tests.conftest import Biller, Running, admin, jst_today
from tests.networks.test_zengin_transfer import bill as transfer_bill
from tests.networks.test_zengin_transfer import (
    consignor,
    debit_day,
    mandate,
    read_request,
    run_admin,
)
from tests.render.test_barcode_svg import _read, _render
from tests.render.test_receipts import squash, text_of, write
from tests.test_api import bill_body

VOID = frozenset({"meta", "br", "link", "img", "input", "hr", "source", "wbr"})


class Page(HTMLParser):
    """The page as a person sees it: the text of each element with an id, every tag."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, dict[str, str | None], list[str]]] = []
        self.by_id: dict[str, str] = {}
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text_parts: list[str] = []
        self.style = self.script = ""
        self._raw: str | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in ("style", "script"):
            self._raw = tag
        if tag not in VOID:
            self.stack.append((tag, dict(attrs), []))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        self._raw = None
        while self.stack:
            name, attrs, parts = self.stack.pop()
            if attrs.get("id"):
                self.by_id[str(attrs["id"])] = "".join(parts).strip()
            if name == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._raw == "style":
            self.style += data
            return
        if self._raw == "script":
            self.script += data
            return
        self.text_parts.append(data)
        for _, _, parts in self.stack:
            parts.append(data)

    @property
    def text(self) -> str:
        return re.sub(r"\s+", " ", "".join(self.text_parts))

    def has(self, tag: str) -> bool:
        return any(t == tag for t, _ in self.tags)

    def svg(self, html: str) -> str:
        found = re.search(r"<svg.*?</svg>", html, re.DOTALL)
        assert found, "no inline SVG in the page"
        return found.group(0)


async def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, Any]:
    resp = await treq.get(url, headers=headers or {})
    return resp.code, await resp.content(), resp.headers


def local(running: Running, page_url: str) -> str:
    """The page on the test daemon (page_url is built from api.public_url)."""
    return running.api + urlsplit(page_url).path


async def open_page(running: Running, page_url: str, status: int = 200) -> tuple[str, Page, Any]:
    code, body, headers = await get(local(running, page_url))
    assert code == status, body[:500]
    html = body.decode("utf-8")
    return html, Page(html), headers


async def new_bill(running: Running, who: Biller, bill_no: str, **over: Any) -> dict[str, Any]:
    status, made, _ = await running.request("POST", "/v1/bills", who, bill_body(bill_no, **over))
    assert status == 201, made
    return dict(made)


def csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def assert_page_headers(headers: Any) -> None:
    def header(name: str) -> str:
        values = headers.getRawHeaders(name)
        assert values, f"no {name} header"
        return str(values[0])

    assert header("content-type") == "text/html; charset=utf-8"
    assert header("x-content-type-options") == "nosniff"
    assert header("referrer-policy") == "no-referrer"
    assert header("cache-control") == "no-store"
    csp = header("content-security-policy")
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "http" not in csp


def assert_self_contained(html: str, page: Page) -> None:
    """Nothing is loaded from anywhere: no external URL, no stylesheet or script file."""
    for tag, attrs in page.tags:
        for name in ("src", "href", "action", "data", "srcset", "poster"):
            value = attrs.get(name)
            if value is not None:
                assert not re.match(r"^([a-z][a-z0-9+.-]*:|//)", value, re.I), (tag, name, value)
        assert tag not in ("link", "img", "iframe", "object", "embed", "form"), tag
        if tag == "script":
            assert "src" not in attrs
    assert "@import" not in page.style and "url(" not in page.style
    assert "import(" not in page.script and "fetch(" not in page.script
    urls = re.findall(r"(?:https?:)?//[^\s\"'<>]+", html)
    assert set(urls) <= {"http://www.w3.org/2000/svg"}, urls  # the SVG namespace name only


# --- the states ----------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_payable_page_shows_the_barcode_and_the_pay_easy_numbers(
    gateway: Running, tmp_path: Path
) -> None:
    acme = gateway.onboard("acme")
    bill = await new_bill(
        gateway, acme, "INV-1", due_date=(jst_today() + timedelta(days=3)).isoformat()
    )
    html, page, headers = await open_page(gateway, bill["page_url"])
    assert_page_headers(headers)
    assert_self_contained(html, page)

    assert page.by_id["biller"] == "acme 株式会社"
    assert page.by_id["state"] == "お支払いいただけます"
    assert page.by_id["amount"] == "¥5,400"
    due = jst_today() + timedelta(days=3)
    assert f"{due.year}年{due.month}月{due.day}日（" in page.by_id["summary"]
    assert "12月分 利用料" in page.by_id["summary"] and "INV-1" in page.by_id["summary"]
    # The barcode: inline SVG that a reader decodes to the bill's 44 digits, and its line.
    raw, symbols = _read(_render(page.svg(html), tmp_path, "page"))
    assert raw == bill["cvs"]["barcode"] + "\n" and symbols == [("CODE-128", "GS1")]
    assert page.by_id["barcode-text"] == bill["cvs"]["human_readable"]
    numbers = bill["payeasy"]
    assert page.by_id["institution-code"] == numbers["institution_code"] == "58191"
    assert page.by_id["customer-number"] == numbers["customer_number"]
    assert page.by_id["confirmation-number"] == numbers["confirmation_number"]
    # Refreshes itself every 3 minutes, with the script the CSP allows by its hash.
    assert "180000" in page.script and "location.reload" in page.script
    assert '<meta http-equiv="refresh" content="180">' in html  # without JavaScript
    csp = headers.getRawHeaders("content-security-policy")[0]
    assert csp_hash(page.script) in csp and csp_hash(page.style) in csp
    assert "3分ごとに自動で更新" in page.text
    assert "山田" not in page.text  # the customer's name is not on a page anyone may be sent


@pytest_twisted.ensureDeferred
async def test_paid_hides_the_barcode_and_numbers_and_confirmed_links_the_receipt(
    gateway: Running, tmp_path: Path
) -> None:
    acme = gateway.onboard("acme")
    bill = await new_bill(gateway, acme, "INV-2")
    code = bill["cvs"]["barcode"]
    assert pay(gateway, code, MessageKind.PRELIMINARY) == "applied"

    html, page, headers = await open_page(gateway, bill["page_url"])
    assert_page_headers(headers)
    assert page.by_id["state"] == "お支払い済み"
    assert not page.has("svg") and "barcode-text" not in page.by_id
    assert "payeasy" not in page.by_id
    for number in bill["payeasy"].values():
        assert number not in html
    assert "お支払いを受け付けました" in page.by_id["paid"]
    assert "receipt" not in page.by_id and "receipt.pdf" not in html
    assert "180000" in page.script  # may still become confirmed: keeps refreshing
    status, _, _ = await get(local(gateway, bill["page_url"]) + "/receipt.pdf")
    assert status == 409

    assert pay(gateway, code, MessageKind.CONFIRMATION) == "applied"
    html, page, headers = await open_page(gateway, bill["page_url"])
    assert_self_contained(html, page)
    assert page.by_id["state"] == "お支払い済み（確定）"
    assert not page.has("svg")
    link = next(a for t, a in page.tags if t == "a" and a.get("id") == "receipt")
    href = str(link["href"])
    assert not urlsplit(href).scheme  # relative: works behind any public_url prefix
    receipt_url = urljoin(local(gateway, bill["page_url"]), href)
    assert urlsplit(receipt_url).path == urlsplit(bill["page_url"]).path + "/receipt.pdf"
    assert page.script == ""  # nothing changes any more

    status, pdf, headers = await get(receipt_url)
    assert status == 200
    assert headers.getRawHeaders("content-type")[0] == "application/pdf"
    assert headers.getRawHeaders("cache-control")[0] == "no-store"
    assert headers.getRawHeaders("referrer-policy")[0] == "no-referrer"
    assert headers.getRawHeaders("content-disposition")[0].startswith("inline; filename=")
    text = text_of(write(tmp_path, pdf))
    _, listed, _ = await gateway.request("GET", "/v1/bills/INV-2/payments", acme)
    (payment,) = listed["data"]
    paid_on = datetime.fromisoformat(payment["paid_at"]).astimezone(JST)
    number = payment["payment_id"].removeprefix("pay_")[:16].upper()
    grouped = "-".join(number[i : i + 4] for i in range(0, 16, 4))
    assert re.search(r"山田 太郎\s*様", text)
    assert "¥5,400-" in text
    assert re.search(r"内消費税等\s+¥490", text)
    assert re.search(r"但し\s+12月分 利用料", text)
    assert re.search(r"支払方法\s+コンビニエンスストア", text)
    assert re.search(r"支払場所\s+ローソン 店舗コード 0110002", text)
    assert re.search(rf"支払日\s+{paid_on.year}年{paid_on.month}月{paid_on.day}日", text)
    assert re.search(r"請求番号\s+INV-2", text)
    assert re.search(rf"領収書番号\s+R-{grouped}", text)
    assert re.search(r"収納者\s+acme 株式会社", squash(text))

    # The same receipt every time, and the biller gets the same document.
    assert (await get(receipt_url))[1] == pdf
    status, again, headers = await get(gateway.api + "/v1/bills/INV-2/receipt.pdf", acme.headers)
    assert status == 200 and again == pdf
    assert headers.getRawHeaders("content-type")[0] == "application/pdf"


@pytest_twisted.ensureDeferred
async def test_the_billers_receipt_route_is_isolated_and_refuses_unconfirmed_bills(
    gateway: Running,
) -> None:
    acme, rival = gateway.onboard("acme"), gateway.onboard("rival")
    bill = await new_bill(gateway, acme, "INV-3")
    url = gateway.api + "/v1/bills/INV-3/receipt.pdf"
    status, _, headers = await get(url, acme.headers)
    assert status == 409
    assert headers.getRawHeaders("content-type")[0].startswith("application/problem+json")
    assert pay(gateway, bill["cvs"]["barcode"], MessageKind.CONFIRMATION) == "applied"
    assert (await get(url, acme.headers))[0] == 200
    assert (await get(url, rival.headers))[0] == 404  # exactly as an unknown bill
    assert (await get(gateway.api + "/v1/bills/NOPE/receipt.pdf", acme.headers))[0] == 404
    assert (await get(url))[0] == 401


@pytest_twisted.ensureDeferred
async def test_expired_and_cancelled_pages_hide_the_barcode(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    late = await new_bill(gateway, acme, "LATE")
    gone = await new_bill(gateway, acme, "GONE")
    assert (await gateway.request("POST", "/v1/bills/GONE/cancel", acme))[0] == 200

    html, page, headers = await open_page(gateway, gone["page_url"])
    assert_page_headers(headers)
    assert page.by_id["state"] == "このご請求は取り消されました"
    assert "お支払いいただけません" in page.by_id["cancelled"]
    assert not page.has("svg") and gone["payeasy"]["customer_number"] not in html

    # Its due date passes: the page says so at once, before the expiry job has run...
    engine = create_db_engine(gateway.config.database.url, 1)
    with engine.begin() as conn:
        conn.execute(
            update(bills)
            .where(bills.c.bill_no == "LATE")
            .values(due_date=jst_today() - timedelta(days=1))
        )
    engine.dispose()
    html, page, _ = await open_page(gateway, late["page_url"])
    assert page.by_id["state"] == "お支払い期限を過ぎています（期限切れ）"
    assert not page.has("svg") and late["payeasy"]["confirmation_number"] not in html
    # ...and after it.
    from twisted.internet import reactor  # noqa: TID251 - the store's threads need the reactor

    store = Store.from_url(gateway.config.database.url, reactor, 1)
    store.start()
    try:
        assert await ExpiryJob(store, reactor, lambda b: {"bill_no": b.bill_no}).run() == 1
    finally:
        store.stop()
    assert (await gateway.request("GET", "/v1/bills/LATE", acme))[1]["status"] == "expired"
    html, page, _ = await open_page(gateway, late["page_url"])
    assert page.by_id["state"] == "お支払い期限を過ぎています（期限切れ）"
    assert "期限切れ" in page.text and "acme 株式会社へお問い合わせください" in page.text
    assert not page.has("svg")


@pytest_twisted.ensureDeferred
async def test_while_a_debit_is_in_flight_the_page_offers_no_other_way_to_pay(
    gateway: Running, tmp_path: Path
) -> None:
    acme = gateway.onboard("acme")
    consignor(gateway, acme)
    day = debit_day()
    await mandate(gateway, acme, "C1")
    await mandate(gateway, acme, "C2", account_number="1111111")
    debited = await transfer_bill(gateway, acme, "DEBITED", "C1", 5400, day)
    fails = await transfer_bill(gateway, acme, "FAILS", "C2", 6000, day)
    made = await run_admin(gateway.config_path, "zengin", "request", "--date", day.isoformat())
    (written,) = made["files"]
    for bill in (debited, fails):
        html, page, _ = await open_page(gateway, bill["page_url"])
        assert page.by_id["state"] == "口座振替の結果を確認中です"
        assert "二重払いを防ぐため" in page.by_id["transfer_pending"]
        assert not page.has("svg") and bill["payeasy"]["customer_number"] not in html
        assert "180000" in page.script

    request = read_request(written["file"])
    # Every code forced: the bank's own draw depends on the file name, hence on the date.
    failing = {d.customer_number: "1" if d.amount == 6000 else "0" for d in request.debits}
    outbox = Path(written["file"]).parent
    bank = SimulatedBank(outbox, tmp_path / "bank-out", tmp_path / "bank", overrides=failing)
    (result_path,) = bank.process_once()
    await run_admin(gateway.config_path, "import", "zengin-result", str(result_path))

    _, page, _ = await open_page(gateway, debited["page_url"])
    assert page.by_id["state"] == "お支払い済み（確定）" and "receipt" in page.by_id
    html, page, _ = await open_page(gateway, fails["page_url"])  # due later: payable again
    assert page.by_id["state"] == "お支払いいただけます" and page.has("svg")
    status, pdf, _ = await get(local(gateway, debited["page_url"]) + "/receipt.pdf")
    assert status == 200
    text = text_of(write(tmp_path, pdf))
    assert re.search(r"支払方法\s+口座振替", text)
    assert re.search(r"支払場所\s+三菱ＵＦＪ（金融機関コード 0005） 渋谷支店", text)


ALL_STORES = (
    "お支払いいただけるコンビニ：セブン-イレブン、ローソン、ファミリーマート、デイリーヤマザキ、"
    "ミニストップ、セイコーマート、ポプラ・生活彩家"
)


@pytest_twisted.ensureDeferred
async def test_the_page_names_the_chains_where_the_slip_can_be_paid(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    bill = await new_bill(gateway, acme, "CH-1")
    # No restriction: every chain of the center, and the payment apps that read the barcode.
    _, page, _ = await open_page(gateway, bill["page_url"])
    assert page.by_id["chains"] == ALL_STORES
    assert page.by_id["chain-apps"] == (
        "バーコード払い対応のスマートフォン決済アプリ："
        "PayPay、d払い、au PAY、J-Coin、LINE Pay、PayB"
    )
    assert "chains-limited" not in page.by_id and "chain-others" not in page.by_id

    # The biller accepts two chains (in any order, any width): the page names those only, in
    # the order of spec/cvs.md §5, and says so — its existing bills' pages too.
    admin(gateway.config_path, "biller", "set", "--id", "acme", "--chains", "0020,10")
    html, page, _ = await open_page(gateway, bill["page_url"])
    assert page.by_id["chains"] == "お支払いいただけるコンビニ：セブン-イレブン、ローソン"
    assert page.by_id["chains-limited"] == "このご請求は、上記のお店でのみお支払いいただけます。"
    assert "chain-apps" not in page.by_id and "ファミリーマート" not in html
    assert page.by_id["cvs"].index("ローソン") > page.by_id["cvs"].index(page.by_id["barcode-text"])

    # An app, the post office (two codes, one name) and a code §5 does not name.
    admin(gateway.config_path, "biller", "set", "--id", "acme", "--chains", "030,820,910,911,999")
    _, page, _ = await open_page(gateway, bill["page_url"])
    assert page.by_id["chains"] == "お支払いいただけるコンビニ：ファミリーマート"
    assert page.by_id["chain-apps"] == "バーコード払い対応のスマートフォン決済アプリ：PayPay"
    assert page.by_id["chain-others"] == "そのほかのお取扱い：郵便局、チェーンコード999"

    # Without a barcode (Pay-easy only) or once paid, no chain is named.
    payeasy = await new_bill(gateway, acme, "CH-2", channels=["payeasy"])
    _, page, _ = await open_page(gateway, payeasy["page_url"])
    assert "chains" not in page.by_id and "コンビニ" not in page.text
    assert pay(gateway, bill["cvs"]["barcode"], MessageKind.PRELIMINARY) == "applied"
    _, page, _ = await open_page(gateway, bill["page_url"])
    assert page.by_id["state"] == "お支払い済み" and "chains" not in page.by_id


@pytest_twisted.ensureDeferred
async def test_a_transfer_only_bill_says_how_it_is_paid(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    bill = await new_bill(gateway, acme, "TR", channels=["transfer"])
    _, page, _ = await open_page(gateway, bill["page_url"])
    assert page.by_id["state"] == "お支払いいただけます"
    assert "口座振替" in page.by_id["transfer"] and not page.has("svg")


@pytest_twisted.ensureDeferred
async def test_everything_the_biller_wrote_is_escaped(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    nasty = "<img src=x onerror=alert(1)><script>alert(2)</script>\"'&"
    bill = await new_bill(gateway, acme, "XSS", description=nasty)
    html, page, _ = await open_page(gateway, bill["page_url"])
    assert nasty in page.by_id["summary"]  # shown as text...
    assert not page.has("img") and page.script.count("alert") == 0  # ...never as markup
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert_self_contained(html, page)


# --- unknown, gone ---------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_unknown_tokens_answer_a_404_page(gateway: Running) -> None:
    for path in (
        "/p/" + "A" * 32,
        "/p/short",
        "/p/%3Cscript%3E",
        "/p/" + "A" * 32 + "/receipt.pdf",
    ):
        status, body, headers = await get(gateway.api + path)
        assert status == 404, path
        assert_page_headers(headers)
        page = Page(body.decode())
        assert "ページが見つかりません" in page.text
        assert_self_contained(body.decode(), page)


@pytest_twisted.ensureDeferred
async def test_pages_past_the_retention_period_are_gone(gateway: Running, tmp_path: Path) -> None:
    acme = gateway.onboard("acme")
    assert gateway.config.bills.retention_days == 92
    opened = await new_bill(gateway, acme, "OPEN")
    cancelled = await new_bill(gateway, acme, "CANCELLED")
    await gateway.request("POST", "/v1/bills/CANCELLED/cancel", acme)
    confirmed = await new_bill(gateway, acme, "CONFIRMED")
    assert pay(gateway, confirmed["cvs"]["barcode"], MessageKind.CONFIRMATION) == "applied"

    def last_changed(bill_no: str, days_ago: float) -> None:
        engine = create_db_engine(gateway.config.database.url, 1)
        with engine.begin() as conn:
            conn.execute(
                update(bills)
                .where(bills.c.bill_no == bill_no)
                .values(updated_at=datetime.now(JST) - timedelta(days=days_ago))
            )
        engine.dispose()

    for bill_no in ("OPEN", "CANCELLED", "CONFIRMED"):
        last_changed(bill_no, 91.9)
    for bill in (opened, cancelled, confirmed):
        await open_page(gateway, bill["page_url"], 200)
    assert (await get(local(gateway, confirmed["page_url"]) + "/receipt.pdf"))[0] == 200

    for bill_no in ("OPEN", "CANCELLED", "CONFIRMED"):
        last_changed(bill_no, 92.1)
    await open_page(gateway, opened["page_url"], 200)  # still to be paid: never gone
    for bill in (cancelled, confirmed):
        _, page, headers = await open_page(gateway, bill["page_url"], 410)
        assert_page_headers(headers)
        assert "公開期間は終了しました" in page.text
        assert not page.has("svg") and "¥" not in page.text
    status, body, _ = await get(local(gateway, confirmed["page_url"]) + "/receipt.pdf")
    assert status == 410 and b"%PDF" not in body
    # The biller keeps its receipt.
    status, pdf, _ = await get(gateway.api + "/v1/bills/CONFIRMED/receipt.pdf", acme.headers)
    assert status == 200 and pdf.startswith(b"%PDF-")


# --- the access log ---------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_the_access_log_does_not_record_the_token(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    bill = await new_bill(gateway, acme, "LOGGED")
    token = urlsplit(bill["page_url"]).path.rsplit("/", 1)[1]
    assert re.fullmatch(r"[A-Za-z0-9_\-]{32}", token)  # 192 random bits, URL-safe base64

    lines: list[str] = []

    def observe(event: dict[str, Any]) -> None:
        lines.append(str(event.get("log_io") or event.get("log_format") or ""))

    globalLogPublisher.addObserver(observe)
    try:
        await open_page(gateway, bill["page_url"])
        await get(local(gateway, bill["page_url"]) + "/receipt.pdf")
        await get(gateway.api + "/p/" + token + "x")  # an unknown one too
        for _ in range(50):  # the access log line is written after the response
            if sum('"GET /p/' in line for line in lines) >= 3:
                break
            await treq.get(gateway.api + "/v1/openapi.json")
    finally:
        globalLogPublisher.removeObserver(observe)
    access = [line for line in lines if '"GET /p/' in line]
    assert len(access) == 3, lines
    for line in access:
        assert token not in line and token[:8] not in line
        assert f'"GET /p/{token[:4]}**** HTTP/1.1"' in line or (
            f'"GET /p/{token[:4]}****/receipt.pdf HTTP/1.1"' in line
        ), line


# --- where and what: the receipt's place and number --------------------------------------------


def _paid(channel: Channel, store: str | None, payment_id: str = "pay_" + "0a" * 12) -> Payment:
    at = datetime(2026, 12, 1, 9, 0, tzinfo=JST)
    return Payment(
        payment_id, "acme", "B", channel, "k", 1000, at, PaymentStatus.CONFIRMED, at, store=store
    )


def test_the_receipt_names_the_store_or_the_bank() -> None:
    """Each network says where its payments were made (gateway.networks.registry)."""

    def place(channel: Channel, store: str | None) -> str:
        return payment_place(_paid(channel, store), REGISTRY.descriptions())

    assert place(Channel.CVS, "000020-0110002") == "ローソン 店舗コード 0110002"
    assert place(Channel.CVS, "000999-0000001") == "チェーンコード 000999 店舗コード 0000001"
    assert place(Channel.CVS, "000020") == "ローソン"
    mufg = "三菱ＵＦＪ（金融機関コード 0005）"  # the Zengin bank master's name
    assert place(Channel.PAYEASY, "0005-1") == f"{mufg} ATM"
    assert place(Channel.PAYEASY, "0005-2") == f"{mufg} インターネットバンキング"
    assert place(Channel.PAYEASY, "0005-3") == f"{mufg} モバイルバンキング"
    assert place(Channel.PAYEASY, "0005-9") == mufg
    assert place(Channel.TRANSFER, "0005-135") == f"{mufg} 渋谷支店"
    assert place(Channel.TRANSFER, "0005") == mufg
    assert place(Channel.TRANSFER, "9999-001") == "金融機関コード 9999 支店コード 001"
    assert place(Channel.CVS, None) == "—"


def test_the_receipt_number_is_stable_for_a_payment() -> None:
    assert receipt_number("pay_0123456789abcdef01234567") == "R-0123-4567-89AB-CDEF"
    other = receipt_number("imported-42")  # another shape: a digest, still stable
    assert re.fullmatch(r"R-[0-9A-F]{4}(-[0-9A-F]{4}){3}", other)
    assert other == receipt_number("imported-42") != receipt_number("imported-43")
