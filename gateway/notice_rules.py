"""A biller's notice rules (issue 22): what it does after a failed debit (``fallback``) and which
notices its customers get, by which medium, in which words (``notices``).

Rules
-----

**Fallback after a failed debit** (:class:`FallbackPolicy`, ``ways`` from ``cvs``, ``payeasy``,
``redebit``; none by default). When a transfer result says a debit failed, the bill (still open,
or expired since) is either

- **debited again** (再振替, ``redebit``): once per bill, for a bill collected by transfer only,
  when the result leaves the mandate active (codes 1 資金不足, 9, E and unknown codes) and a
  debit date the request runs can still reach falls within ``redebit_days`` days after the
  bill's original due date; the bill's due date becomes that debit date, so that date's request
  takes it (``bill.redebit_scheduled``);
- or **reissued with the other channels** (``cvs`` and/or ``payeasy``): the transfer channel is
  taken off the bill and the channels are added — a new slip, new Pay-easy numbers where it had
  none, a due date ``due_days`` days ahead, the same page URL (``bill.fallback_issued``), and
  the customer is told (the ``fallback`` notice).

Redebit comes first when both are allowed; a second failure (or a redebit that no date can
reach) reissues. Never both at once: while a redebit is scheduled the bill keeps only its
channels, and once reissued it has no transfer channel, so no request file takes it again.
Results 8 (stopped by the biller) and N (result not arrived: the real one follows) start no
fallback.

**Notices** (:class:`NoticeRules`): ``page`` (the page URL of a new bill or a reissue),
``fallback`` (the page URL after a failed debit), ``reminder`` (``reminder_days`` days before the
due date, for a bill the customer pays themselves) and ``received`` (a 速報 or 消込 arrived).
Each goes by the media the biller lists for it (``email``, ``sms``) that the customer's details
allow (an e-mail address; a mobile number 060/070/080/090 for SMS) and the customer has not
opted out of. Defaults: ``page`` by e-mail (as before issue 22), ``fallback`` by e-mail and SMS,
no reminder, no receipt notice.

**Templates** (Japanese): every text has a default here; a biller may replace any of them
(``sms.<kind>``, ``email.<kind>``, ``subject.<kind>``) with its own words, using only the
placeholders of :data:`PLACEHOLDERS` (``{url}``, ``{amount}``…; ``{{`` and ``}}`` for braces). A
placeholder outside that list is refused when the template is set, never at send time.

Pure values: no I/O, no clock. :meth:`NoticeRules.to_json` and :meth:`NoticeRules.from_json` are
how ``billers.notice_rules`` keeps them (``NULL``: the defaults).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from gateway.errors import FieldError
from gateway.validation import Fields


class Medium(StrEnum):
    """How a notice reaches the customer."""

    EMAIL = "email"
    SMS = "sms"


class Notice(StrEnum):
    """What a notice says."""

    PAGE = "page"  # the page URL of a new bill, or of a reissue
    FALLBACK = "fallback"  # a debit failed: the page URL and the ways to pay now open
    REMINDER = "reminder"  # the due date is near
    RECEIVED = "received"  # a payment arrived (速報 / 消込)


class FallbackWay(StrEnum):
    CVS = "cvs"
    PAYEASY = "payeasy"
    REDEBIT = "redebit"


#: 振替結果コード that start no fallback: 0 (debited), 8 (the biller stopped the debit itself)
#: and N (the result has not arrived: the real one follows).
NO_FALLBACK_CODES = frozenset({"0", "8", "N"})
#: 振替結果コード after which the mandate is kept active: a 再振替 may succeed.
REDEBIT_CODES_EXCLUDED = frozenset({"2", "3", "4"})

MAX_DAYS = 365
MAX_REMINDER_DAYS = 60
TEMPLATE_MAX = 1000  # characters of one template
# An SMS is sent in UCS-2 (Japanese text): one message holds 70 characters; a longer one goes as
# a long (concatenated) SMS of parts of 67 characters each (3 go to the header that joins them),
# each part billed by the carrier as one message (通). A character outside the BMP (an emoji, a
# rare kanji such as 𠮷) takes two. 660 is the carriers' common limit of a long SMS: a text over it
# is refused (the notice fails), never cut (a cut would lose the page URL at its end).
SMS_SINGLE = 70  # UCS-2 characters of an SMS sent as one message
SMS_PART = 67  # UCS-2 characters of each part of a long SMS
SMS_MAX = 660  # UCS-2 characters of one SMS once rendered: a long SMS of at most 10 parts
MOBILE = re.compile(r"0[6789]0[0-9]{8}")

#: The placeholders a template may use, and what each stands for.
PLACEHOLDERS: Mapping[str, str] = {
    "biller": "the biller's name",
    "name": "the customer's name, or お客様",
    "bill_no": "the bill's number",
    "amount": "the amount, as ¥5,400",
    "due_date": "the due date, as 2026年12月15日 (期限なし without one)",
    "url": "the payment page's URL",
    "ways": "the ways to pay (コンビニ・ペイジー)",
    "paid_at": "when the payment was made, as 2026年12月15日 10:30 (received)",
}
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

DEFAULT_SEND: Mapping[Notice, frozenset[Medium]] = {
    Notice.PAGE: frozenset({Medium.EMAIL}),
    Notice.FALLBACK: frozenset({Medium.EMAIL, Medium.SMS}),
    Notice.REMINDER: frozenset(),
    Notice.RECEIVED: frozenset(),
}
Send = tuple[tuple[Notice, frozenset[Medium]], ...]  # every kind, in Notice's order


def sms_length(text: str) -> int:
    """The length of ``text`` in UCS-2 characters (UTF-16 code units): what carriers count."""
    return len(text.encode("utf-16-le")) // 2


def sms_segments(text: str) -> int:
    """How many messages (segments) the carrier bills ``text`` as: 1 up to :data:`SMS_SINGLE`
    characters, else one per part of :data:`SMS_PART` — a character of two units is never split
    between parts, so it may start a part of its own."""
    if sms_length(text) <= SMS_SINGLE:
        return 1
    parts, used = 1, 0
    for char in text:
        width = 2 if ord(char) > 0xFFFF else 1
        if used + width > SMS_PART:
            parts, used = parts + 1, 0
        used += width
    return parts


def send_of(media: Mapping[Notice, frozenset[Medium]]) -> Send:
    """Media by kind as :class:`NoticeRules` keeps them (a kind not given: the default)."""
    return tuple((kind, frozenset(media.get(kind, DEFAULT_SEND[kind]))) for kind in Notice)


_SIGN_OFF = "このメールは送信専用です。ご不明な点は{biller}にお問い合わせください。"
DEFAULT_TEMPLATES: Mapping[str, str] = {
    "subject.page": "【{biller}】お支払いのご案内（{bill_no}）",
    "subject.fallback": "【{biller}】口座振替ができませんでした（{bill_no}）",
    "subject.reminder": "【{biller}】お支払期限が近づいています（{bill_no}）",
    "subject.received": "【{biller}】お支払いを受け付けました（{bill_no}）",
    "email.page": (
        "{name} 様\n\n{biller}からのご請求のお知らせです。\n\n"
        "  請求番号    {bill_no}\n  金額        {amount}\n  お支払期限  {due_date}\n\n"
        "コンビニエンスストアやペイジー（Pay-easy）でのお支払いに必要なバーコードと番号は、\n"
        "次のページでご覧いただけます。お支払いが済むと、このページに表示されます。\n\n"
        "{url}\n\n" + _SIGN_OFF
    ),
    "email.fallback": (
        "{name} 様\n\n{biller}からのお知らせです。\n\n"
        "ご登録の口座からの引き落とし（口座振替）ができませんでした。\n"
        "お手数ですが、{ways}で次のご請求をお支払いください。\n\n"
        "  請求番号    {bill_no}\n  金額        {amount}\n  お支払期限  {due_date}\n\n"
        "お支払いに必要なバーコードと番号は、次のページでご覧いただけます。\n"
        "このご請求の引き落としをもう一度行うことはありません。\n\n"
        "{url}\n\n" + _SIGN_OFF
    ),
    "email.reminder": (
        "{name} 様\n\n{biller}からのお知らせです。\n\n"
        "次のご請求のお支払期限が近づいています。\n\n"
        "  請求番号    {bill_no}\n  金額        {amount}\n  お支払期限  {due_date}\n\n"
        "お支払い方法は次のページでご覧いただけます。すでにお支払いの場合は、"
        "このお知らせと行き違いになりました。\n\n{url}\n\n" + _SIGN_OFF
    ),
    "email.received": (
        "{name} 様\n\n{biller}へのお支払いを受け付けました。ありがとうございました。\n\n"
        "  請求番号    {bill_no}\n  金額        {amount}\n  お支払日時  {paid_at}\n\n"
        "お支払いの確定後、次のページで領収書を表示できます。\n\n{url}\n\n" + _SIGN_OFF
    ),
    "sms.page": "【{biller}】ご請求 {amount}（期限 {due_date}）のお支払いはこちら {url}",
    "sms.fallback": (
        "【{biller}】口座振替ができませんでした。{amount}を{due_date}までに{ways}で"
        "お支払いください {url}"
    ),
    "sms.reminder": "【{biller}】お支払期限（{due_date}）が近づいています。{amount} {url}",
    "sms.received": (
        "【{biller}】{amount}のお支払いを受け付けました（{paid_at}）。ありがとうございました"
    ),
}


def template_errors(text: str) -> list[str]:
    """What is wrong with a template: placeholders not in :data:`PLACEHOLDERS`, single braces
    (``{{`` and ``}}`` write a brace), or its length."""
    problems: list[str] = []
    if len(text) > TEMPLATE_MAX:
        problems.append(f"must be at most {TEMPLATE_MAX} characters")
    for m in _TOKEN.finditer(text):
        token = m.group(0)
        if token in ("{{", "}}"):
            continue
        name = m.group(1)
        if name is None:
            problems.append("a single brace: write {{ or }} for a brace")
        elif name not in PLACEHOLDERS:
            known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            problems.append(f"{{{name[:20]}}} is not a placeholder (known: {known})")
    return problems


def fill(text: str, values: Mapping[str, str]) -> str:
    """A checked template with its placeholders replaced (no format spec, no attribute access:
    only the names of :data:`PLACEHOLDERS`, each by its value)."""

    def one(m: re.Match[str]) -> str:
        token = m.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        name = m.group(1)
        if name is None or name not in PLACEHOLDERS:
            return token  # refused when set; kept as written if an old row has one
        return values.get(name, "")

    return _TOKEN.sub(one, text)


def is_mobile(phone: str | None) -> bool:
    """Whether ``phone`` (digits, as a bill's customer has it) can receive an SMS: a Japanese
    mobile number (060, 070, 080, 090 and 8 digits)."""
    return phone is not None and MOBILE.fullmatch(phone) is not None


@dataclass(frozen=True)
class FallbackPolicy:
    """What a failed debit leads to (none by default: the bill stays as it is)."""

    ways: frozenset[FallbackWay] = frozenset()
    due_days: int = 14  # a reissued bill's due date: this many days after the reissue
    redebit_days: int = 14  # a 再振替 falls at most this many days after the original due date

    @property
    def channels(self) -> frozenset[FallbackWay]:
        return self.ways - {FallbackWay.REDEBIT}

    @property
    def redebit(self) -> bool:
        return FallbackWay.REDEBIT in self.ways

    def document(self) -> dict[str, Any]:
        return {
            "ways": sorted(w.value for w in self.ways),
            "due_days": self.due_days,
            "redebit_days": self.redebit_days,
        }


@dataclass(frozen=True)
class NoticeRules:
    """A biller's fallback policy and notice settings (the defaults: no fallback, the page URL
    by e-mail on a new bill and a reissue, the fallback notice by e-mail and SMS)."""

    fallback: FallbackPolicy = field(default_factory=FallbackPolicy)
    send: Send = field(default_factory=lambda: send_of({}))
    reminder_days: int = 3
    templates: tuple[tuple[str, str], ...] = ()  # the biller's own words, by key, sorted

    def media(self, notice: Notice) -> frozenset[Medium]:
        return dict(self.send).get(notice, frozenset())

    def template(self, key: str) -> str:
        """The biller's template ``key`` (``sms.page``…), or the default."""
        return dict(self.templates).get(key) or DEFAULT_TEMPLATES[key]

    @property
    def is_default(self) -> bool:
        return self == NoticeRules()

    def notices_document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            kind.value: sorted(m.value for m in self.media(kind)) for kind in Notice
        }
        doc["reminder_days"] = self.reminder_days
        doc["templates"] = dict(self.templates)
        return doc

    def document(self) -> dict[str, Any]:
        """As the API and the command line show them: ``fallback`` and ``notices``."""
        return {"fallback": self.fallback.document(), "notices": self.notices_document()}

    def to_json(self) -> str | None:
        """What ``billers.notice_rules`` keeps (None for the defaults)."""
        if self.is_default:
            return None
        return json.dumps(self.document(), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> NoticeRules:
        if not text:
            return cls()
        doc = json.loads(text)
        fb, ns = doc.get("fallback") or {}, doc.get("notices") or {}
        return cls(
            FallbackPolicy(
                frozenset(FallbackWay(w) for w in fb.get("ways", [])),
                int(fb.get("due_days", 14)),
                int(fb.get("redebit_days", 14)),
            ),
            send_of(
                {k: frozenset(Medium(m) for m in ns.get(k.value, DEFAULT_SEND[k])) for k in Notice}
            ),
            int(ns.get("reminder_days", 3)),
            tuple(sorted((ns.get("templates") or {}).items())),
        )


# --- changing them: the API's body and the command line's flags -------------------------------


def _choices(f: Fields, key: str, values: list[str], kind: type[StrEnum]) -> frozenset[Any]:
    found: set[Any] = set()
    for i, raw in enumerate(values):
        try:
            value = kind(raw)
        except ValueError:
            names = ", ".join(v.value for v in kind)
            f.bad(f"{key}[{i}]", f"{raw[:20]!r} is not one of {names}")
            continue
        if value in found:
            f.bad(f"{key}[{i}]", f"{raw} is listed twice")
        found.add(value)
    return frozenset(found)


def parse_fallback_change(f: Fields, current: FallbackPolicy) -> FallbackPolicy:
    """The policy after a change given as the object ``f`` reads (``fallback`` of a
    ``PATCH /v1/billers/{id}`` body): each of ``ways`` (``[]``: none), ``due_days`` and
    ``redebit_days`` that is present replaces that part. Errors go to ``f``."""
    ways = current.ways
    listed = f.string_list("ways")
    if listed is not None:
        ways = _choices(f, "ways", listed, FallbackWay)
    due_days = f.integer("due_days", low=1, high=MAX_DAYS)
    redebit_days = f.integer("redebit_days", low=1, high=MAX_DAYS)
    f.finish()
    return FallbackPolicy(
        ways,
        current.due_days if due_days is None else due_days,
        current.redebit_days if redebit_days is None else redebit_days,
    )


def parse_notices_change(f: Fields, current: NoticeRules) -> NoticeRules:
    """The notice settings after a change given as the object ``f`` reads (``notices`` of a
    ``PATCH /v1/billers/{id}`` body): each of ``page``, ``fallback``, ``reminder``, ``received``
    (a list of media; ``[]``: none), ``reminder_days`` that is present replaces that part;
    ``templates`` sets each template it names (``null`` brings back the default)."""
    send = dict(current.send)
    for kind in Notice:
        listed = f.string_list(kind.value)
        if listed is not None:
            send[kind] = _choices(f, kind.value, listed, Medium)
    days = f.integer("reminder_days", low=1, high=MAX_REMINDER_DAYS)
    templates = dict(current.templates)
    t = f.obj("templates")
    if t is not None:
        for key in list(t.raw):
            t.seen.add(key)
            if key not in DEFAULT_TEMPLATES:
                known = ", ".join(DEFAULT_TEMPLATES)
                t.bad(key[:40], f"is not a template (known: {known})")
                continue
            value = t.raw[key]
            if value is None:
                templates.pop(key, None)
                continue
            if not isinstance(value, str) or not value:
                t.malformed.append(FieldError(t.name(key), "must be a non-empty string or null"))
                continue
            one_line = key.startswith(("sms.", "subject."))
            if _CONTROL.search(value.replace("\n", "") if not one_line else value):
                what = "one line" if one_line else "text without control characters but newlines"
                t.bad(key, f"must be {what}")
            for problem in template_errors(value):
                t.bad(key, problem)
            templates[key] = value
    f.finish()
    return NoticeRules(
        current.fallback,
        send_of(send),
        current.reminder_days if days is None else days,
        tuple(sorted(templates.items())),
    )


def parse_rules_change(
    fallback: Fields | None, notices: Fields | None, current: NoticeRules
) -> NoticeRules:
    """:func:`parse_fallback_change` and :func:`parse_notices_change` together."""
    rules = current
    if fallback is not None:
        policy = parse_fallback_change(fallback, current.fallback)
        rules = NoticeRules(policy, rules.send, rules.reminder_days, rules.templates)
    if notices is not None:
        rules = parse_notices_change(notices, rules)
    return rules
