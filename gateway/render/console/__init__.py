"""The console's screens as HTML: Jinja2 templates (autoescaping on) and static files, all in
this package; no I/O but reading them, no clock.

- ``templates/``: one template a screen, extending ``base.html``; ``_*.html`` are fragments
  that htmx swaps in (the bill's timeline).
- ``static/``: ``console.css`` (mobile first, no build step) and ``htmx.min.js`` (htmx 2.0.11,
  vendored with its licence, 0BSD: ``htmx.LICENSE.txt``). Nothing is loaded from elsewhere.
- :data:`CONTENT_SECURITY_POLICY`: scripts and styles from the console's own files only, no
  inline script or style, requests and forms to the console's own origin, no framing. htmx is
  told (``<meta name="htmx-config">``) not to inject its indicator styles nor evaluate code.

The words the screens show for the gateway's codes (a bill's status, a channel, a timeline
entry) are :data:`LABELS`'; what a screen shows is decided by the services
(gateway.billing.console_*), never here.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from functools import cache
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from gateway.model import JST

HTML = "text/html; charset=utf-8"

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)

#: The headers of every console answer (the router adds Cache-Control: no-store and
#: X-Content-Type-Options: nosniff to every answer; repeated here for clarity).
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Robots-Tag": "noindex, nofollow",
}

STATIC = {  # name → content type
    "console.css": "text/css; charset=utf-8",
    "htmx.min.js": "text/javascript; charset=utf-8",
}

LABELS: dict[str, dict[str, str]] = {
    "status": {
        "open": "未入金",
        "paid": "入金済（速報）",
        "confirmed": "入金確定",
        "expired": "期限切れ",
        "cancelled": "取消済",
    },
    "channel": {"cvs": "コンビニ", "payeasy": "ペイジー", "transfer": "口座振替"},
    "payment_status": {"pending": "速報", "confirmed": "確定", "voided": "取消"},
    "timeline": {
        "issued": "請求を発行",
        "reissued": "再発行",
        "cvs.preliminary": "速報（コンビニ）",
        "cvs.confirmation": "確報（コンビニ）",
        "cvs.void": "速報取消（コンビニ）",
        "cvs.correction": "金額訂正（コンビニ）",
        "payeasy.preliminary": "消込（ペイジー）",
        "payeasy.confirmation": "確定（ペイジー閉局）",
        "payeasy.void": "取消（ペイジー）",
        "transfer.requested": "口座振替を依頼",
        "transfer.confirmation": "口座振替結果：振替済",
        "transfer.failure": "口座振替結果：振替不能",
        "event": "イベント",
        "webhook": "Webhook 配信",
    },
    "matched": {
        "bill_no": "請求番号",
        "customer_no": "お客様コード",
        "barcode": "バーコード",
        "cvs_bill_key": "バーコード（請求キー）",
        "payeasy_customer_number": "お客様番号（ペイジー）",
        "payment_id": "入金ID",
        "payment_store": "支払った店舗・銀行",
    },
    "delivery": {"pending": "配信待ち", "delivered": "配信済", "failed": "配信失敗"},
    "reason": {
        "double_payment": "二重入金",
        "paid_after_cancel": "取消後の入金",
        "amount_mismatch": "金額相違",
        "unknown_bill": "不明な請求への入金",
    },
    "resolution": {
        "refunded": "返金済",
        "no_refund": "返金しない",
        "applied_to_bill": "請求に充当",
    },
    "case_status": {"open": "未対応", "resolved": "対応済"},
}


def yen(amount: int | None) -> str:
    return "" if amount is None else f"¥{amount:,}"


def jst(value: datetime | str | None) -> str:
    """An instant as Japan's wall clock, to the second."""
    if value is None or value == "":
        return ""
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return at.astimezone(JST).strftime("%Y-%m-%d %H:%M:%S")


def day(value: date | str | None) -> str:
    if value is None or value == "":
        return "なし"
    return value if isinstance(value, str) else value.isoformat()


def pretty(value: Any) -> str:
    """A JSON document to read (the audit log's before and after): indented, keys sorted,
    Japanese as it is (the template escapes it)."""
    return json.dumps(value, ensure_ascii=False, indent=1, sort_keys=True, default=str)


def label(code: str | None, table: str) -> str:
    if code is None:
        return ""
    return LABELS[table].get(code, code)


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("gateway.render.console", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(yen=yen, jst=jst, day=day, label=label, pretty=pretty)
    env.globals["LABELS"] = LABELS
    return env


def render(template: str, **context: Any) -> str:
    """A screen (or a fragment): ``context`` as the template names it."""
    return environment().get_template(template).render(**context)


@cache
def static_file(name: str) -> bytes:
    """One of :data:`STATIC`'s files, as shipped in the package."""
    if name not in STATIC:
        raise KeyError(name)
    return resources.files(__package__).joinpath("static", name).read_bytes()
