"""The customer's payment page (``GET /p/{token}``) as HTML: pure functions, no I/O, no clock.

One self-contained document, mobile first: inline CSS, the barcode as inline SVG, and one tiny
inline script that reloads the page every 3 minutes (a ``<noscript>`` meta refresh does the same
without JavaScript). Nothing is loaded from anywhere: the Content-Security-Policy
(:data:`CONTENT_SECURITY_POLICY`) allows only this style sheet and this script, by their hashes.
Every value is HTML-escaped.

What the page shows follows the bill's state (:func:`page_state`):

- ``payable`` (open, not past due): the barcode and its human-readable line, where it can be paid
  (お支払いいただけるコンビニ: the chains the biller accepts, or every chain of the center), the
  Pay-easy numbers;
- ``transfer_pending`` (open, and an account-transfer debit of it was requested, result not
  back): 口座振替の結果を確認中; hidden, so the customer does not pay a bill being debited;
- ``paid`` (a 速報 or 消込 arrived): お支払い済み; barcode and numbers hidden, so nobody pays twice;
- ``confirmed``: お支払い済み（確定）and a link to the receipt PDF;
- ``expired`` (or open and past its due date, before the expiry job has run): 期限切れ, hidden;
- ``cancelled``: 取り消し, hidden.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from html import escape

from gateway.model import JST, BillStatus, PayEasyNumbers

REFRESH_SECONDS = 180
WEEKDAYS = "月火水木金土日"

CSS = """\
*{box-sizing:border-box}
body{margin:0;background:#f3f4f6;color:#1f2328;line-height:1.6;-webkit-text-size-adjust:100%;\
font-family:system-ui,-apple-system,"Hiragino Sans","Noto Sans JP","Yu Gothic",Meiryo,sans-serif}
main{max-width:34rem;margin:0 auto;padding:1rem}
header p{margin:0;color:#57606a;font-size:.85rem}
h1{font-size:1.3rem;margin:0 0 1rem;word-break:break-word}
h2{font-size:1rem;margin:0 0 .5rem}
.card{background:#fff;border-radius:12px;padding:1rem;margin:0 0 1rem;\
box-shadow:0 1px 3px rgba(0,0,0,.1)}
.state{font-weight:700;font-size:1.15rem;border-radius:10px;padding:.75rem 1rem;margin:0 0 1rem}
.payable{background:#ddf4ff;color:#0550ae}
.paid,.confirmed{background:#dafbe1;color:#116329}
.transfer_pending{background:#fff8c5;color:#7d4e00}
.expired,.cancelled{background:#ffebe9;color:#a40e26}
.amount{font-size:2rem;font-weight:700;margin:0 0 .5rem}
dl{margin:0;display:grid;grid-template-columns:auto 1fr;gap:.3rem 1rem}
dt{color:#57606a}
dd{margin:0;word-break:break-all}
.barcode svg{display:block;width:100%;height:auto}
.hr{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.8rem;text-align:center;\
word-break:break-all;margin:.25rem 0 0}
.numbers dd{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:1.25rem;\
letter-spacing:.06em}
.note{font-size:.9rem;margin:0 0 .5rem}
.button{display:block;text-align:center;background:#116329;color:#fff;padding:.8rem;\
border-radius:10px;text-decoration:none;font-weight:700}
footer{color:#57606a;font-size:.8rem;text-align:center}
"""

SCRIPT = f"setTimeout(function(){{location.reload()}},{REFRESH_SECONDS * 1000});"


def _csp_hash(text: str) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


#: Only the page's own inline style sheet and script run; nothing else is loaded, no form is
#: sent, and no other site may frame the page.
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src {_csp_hash(CSS)}; script-src {_csp_hash(SCRIPT)}; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

#: The headers of every page and error page (the router adds Cache-Control: no-store and
#: X-Content-Type-Options: nosniff to every answer; they are repeated here for clarity).
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Robots-Tag": "noindex, nofollow",
}
HTML = "text/html; charset=utf-8"


class PageState(StrEnum):
    PAYABLE = "payable"
    TRANSFER_PENDING = "transfer_pending"
    PAID = "paid"
    CONFIRMED = "confirmed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


def page_state(
    status: BillStatus, due_date: date | None, today: date, debit_in_flight: bool = False
) -> PageState:
    """The state the page shows. An open bill whose debit is in flight waits for its result
    (the expiry job leaves it open too); an open bill past its due date shows as expired before
    the expiry job has stored it so, as the MPN inquiry answers 1003 for it."""
    if status is BillStatus.OPEN:
        if debit_in_flight:
            return PageState.TRANSFER_PENDING
        overdue = due_date is not None and due_date < today
        return PageState.EXPIRED if overdue else PageState.PAYABLE
    return PageState(status.value)


@dataclass(frozen=True)
class PageView:
    """Everything the page shows; built by :mod:`gateway.billing.pages` from the store."""

    token: str
    biller_name: str
    bill_no: str
    amount: int
    due_date: date | None
    description: str | None
    state: PageState
    double_paid: bool
    barcode_svg: str | None  # the inline SVG of the current slip, when the bill has one
    barcode_text: str | None  # its human-readable line
    payeasy: PayEasyNumbers | None
    transfer: bool  # the bill is collected by account transfer
    paid_at: datetime | None  # of the payment that paid it, when paid or confirmed
    rendered_at: datetime
    # (min, max) when the payer chooses the amount (``amount`` is then 0): shown instead of it.
    amount_range: tuple[int, int] | None = None
    # Where the barcode can be paid, by name (gateway.billing.chains.paying_chains): the
    # convenience-store chains, the payment apps, other places; ``chains_limited``: the biller
    # accepts only these (else they are every chain of the center).
    chain_stores: tuple[str, ...] = ()
    chain_apps: tuple[str, ...] = ()
    chain_others: tuple[str, ...] = ()
    chains_limited: bool = False


def yen(amount: int) -> str:
    return f"¥{amount:,}"


def jst_day(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日（{WEEKDAYS[day.weekday()]}）"


def jst_time(at: datetime) -> str:
    local = at.astimezone(JST)
    return f"{jst_day(local.date())} {local:%H:%M}"


def _e(text: str) -> str:
    return escape(text, quote=True)


def _document(title: str, body: str, refresh: bool) -> str:
    head = [
        "<!DOCTYPE html>",
        '<html lang="ja">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        '<meta name="robots" content="noindex,nofollow">',
        '<meta name="referrer" content="no-referrer">',
        f"<title>{_e(title)}</title>",
        f"<style>{CSS}</style>",
    ]
    if refresh:
        head += [
            f"<script>{SCRIPT}</script>",
            f'<noscript><meta http-equiv="refresh" content="{REFRESH_SECONDS}"></noscript>',
        ]
    return "\n".join([*head, "</head>", "<body>", "<main>", body, "</main>", "</body>", "</html>"])


_STATE_LINE = {
    PageState.PAYABLE: "お支払いいただけます",
    PageState.TRANSFER_PENDING: "口座振替の結果を確認中です",
    PageState.PAID: "お支払い済み",
    PageState.CONFIRMED: "お支払い済み（確定）",
    PageState.EXPIRED: "お支払い期限を過ぎています（期限切れ）",
    PageState.CANCELLED: "このご請求は取り消されました",
}


def _summary(v: PageView) -> str:
    rows = [("お支払期限", jst_day(v.due_date) if v.due_date else "期限なし")]
    if v.description:
        rows.append(("内容", v.description))
    rows.append(("請求番号", v.bill_no))
    amount = yen(v.amount)
    if v.amount_range is not None:  # the payer enters the amount at the ATM or bank
        low, high = v.amount_range
        amount = f"{yen(low)}〜{yen(high)}"
        rows.insert(0, ("金額", "この範囲でお支払い時にお決めください"))
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(val)}</dd>" for k, val in rows)
    return (
        '<section class="card" id="summary" aria-label="ご請求内容">'
        f'<p class="amount" id="amount">{_e(amount)}</p><dl>{items}</dl></section>'
    )


def _where_to_pay(v: PageView) -> str:
    """The chains (and apps, and other places) where the barcode can be paid."""
    lines = [
        (label, i, names)
        for label, i, names in (
            ("お支払いいただけるコンビニ", "chains", v.chain_stores),
            ("バーコード払い対応のスマートフォン決済アプリ", "chain-apps", v.chain_apps),
            ("そのほかのお取扱い", "chain-others", v.chain_others),
        )
        if names
    ]
    parts = [
        f'<p class="note" id="{i}">{label}：{_e("、".join(names))}</p>' for label, i, names in lines
    ]
    if v.chains_limited:
        parts.append(
            '<p class="note" id="chains-limited">このご請求は、上記のお店でのみお支払い'
            "いただけます。</p>"
        )
    return "".join(parts)


def _how_to_pay(v: PageView) -> list[str]:
    parts: list[str] = []
    if v.barcode_svg is not None:
        parts.append(
            '<section class="card barcode" id="cvs"><h2>コンビニエンスストアでお支払い</h2>'
            '<p class="note">レジでこのバーコードをご提示ください。</p>'
            f"{v.barcode_svg.strip()}"
            f'<p class="hr" id="barcode-text">{_e(v.barcode_text or "")}</p>'
            f"{_where_to_pay(v)}</section>"
        )
    if v.payeasy is not None:
        numbers = (
            ("収納機関番号", "institution-code", v.payeasy.institution_code),
            ("お客様番号", "customer-number", v.payeasy.customer_number),
            ("確認番号", "confirmation-number", v.payeasy.confirmation_number),
        )
        items = "".join(f'<dt>{k}</dt><dd id="{i}">{_e(n)}</dd>' for k, i, n in numbers)
        parts.append(
            '<section class="card numbers" id="payeasy"><h2>Pay-easy（ペイジー）でお支払い</h2>'
            '<p class="note">ペイジー対応の銀行ATM・インターネットバンキングで、'
            f"次の番号を入力してください。</p><dl>{items}</dl></section>"
        )
    if v.transfer and not parts:
        parts.append(
            '<section class="card" id="transfer"><p class="note">このご請求は口座振替で'
            "お支払いいただきます。お支払期限日にご登録の口座から引き落とされます。</p></section>"
        )
    return parts


def _state_detail(v: PageView) -> list[str]:
    biller = _e(v.biller_name)
    if v.state is PageState.PAYABLE:
        return _how_to_pay(v)
    if v.state in (PageState.PAID, PageState.CONFIRMED):
        when = f"（{_e(jst_time(v.paid_at))}）" if v.paid_at else ""
        lines = [f'<p class="note">お支払いを受け付けました{when}。ありがとうございました。</p>']
        if v.double_paid:
            lines.append(
                '<p class="note" id="double-paid">このご請求は重複してお支払いいただいています。'
                f"返金については{biller}からご連絡いたします。</p>"
            )
        if v.state is PageState.CONFIRMED:
            href = _e(f"{v.token}/receipt.pdf")
            lines.append(f'<a class="button" id="receipt" href="{href}">領収書（PDF）を表示</a>')
        else:
            lines.append('<p class="note">お支払いの確定後、このページで領収書を表示できます。</p>')
        return [f'<section class="card" id="paid">{"".join(lines)}</section>']
    if v.state is PageState.TRANSFER_PENDING:
        text = (
            "ご登録の口座からの引き落としを金融機関に依頼しています。結果が届くまで数日かかる"
            "ことがあります。二重払いを防ぐため、この間はほかの方法でのお支払いをお控えください。"
        )
    elif v.state is PageState.EXPIRED:
        text = (
            "お支払い期限を過ぎたため、このページのバーコード・ペイジー番号ではお支払いいただけません。"
            f"お支払い方法は{biller}へお問い合わせください。"
        )
    else:
        text = (
            "このご請求は請求元により取り消されたため、お支払いいただけません。"
            f"ご不明な点は{biller}へお問い合わせください。"
        )
    return [f'<section class="card" id="{v.state.value}"><p class="note">{text}</p></section>']


def refreshes(state: PageState) -> bool:
    """Confirmed and cancelled bills do not change any more: their pages do not reload."""
    return state not in (PageState.CONFIRMED, PageState.CANCELLED)


def render_page(v: PageView) -> str:
    """The payment page of one bill."""
    refresh = refreshes(v.state)
    footer = f"{_e(jst_time(v.rendered_at))} 時点の情報です。"
    if refresh:
        footer = f"このページは3分ごとに自動で更新されます。<br>{footer}"
    body = [
        f'<header><p>請求元</p><h1 id="biller">{_e(v.biller_name)}</h1></header>',
        f'<p class="state {v.state.value}" id="state" role="status">{_STATE_LINE[v.state]}</p>',
        _summary(v),
        *_state_detail(v),
        f"<footer><p>{footer}</p></footer>",
    ]
    return _document(f"お支払い｜{v.biller_name}", "\n".join(body), refresh)


def error_page(status: int) -> str:
    """The page of an unknown token (404), a bill past the retention period (410) or a receipt
    that is not issued yet (409)."""
    title, text = {
        404: (
            "ページが見つかりません",
            "アドレスをご確認ください。ご不明な点は請求元へお問い合わせください。",
        ),
        409: (
            "領収書はまだ発行されていません",
            "領収書は、お支払いが確定した後に発行されます。",
        ),
        410: (
            "このページの公開期間は終了しました",
            "お支払い状況については請求元へお問い合わせください。",
        ),
    }[status]
    body = f'<section class="card" id="error"><h1>{title}</h1><p class="note">{text}</p></section>'
    return _document(title, body, refresh=False)
