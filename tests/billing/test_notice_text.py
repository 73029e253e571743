"""Who gets a notice and whether a claimed one still goes (gateway.billing.notice_text), and its
words: pure rules over a claimed notice."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from gateway.billing.notice_text import media_for, skip_reason, sms_text, values
from gateway.model import (
    Bill,
    BillStatus,
    Channel,
    Customer,
    Payment,
    PaymentStatus,
    Tax,
)
from gateway.notice_rules import Medium, Notice, NoticeRules, send_of
from gateway.store.notify import Claimed

NOW = datetime(2026, 12, 9, 1, 30, tzinfo=UTC)  # 10:30 JST
TODAY = date(2026, 12, 9)
BILL = Bill(
    biller_id="acme",
    bill_no="B-1",
    amount=5400,
    due_date=date(2026, 12, 20),
    channels=frozenset({Channel.CVS, Channel.PAYEASY}),
    customer=Customer("C1", "山田 太郎", email="taro@example.jp", phone="09012345678"),
    tax=Tax(),
    description=None,
    created_at=NOW,
    updated_at=NOW,
)
EVERYTHING = NoticeRules(send=send_of({k: frozenset(Medium) for k in Notice}))
PAYMENT = Payment("pay_1", "acme", "B-1", Channel.CVS, "k", 5400, NOW, PaymentStatus.PENDING, NOW)


def claimed(kind: Notice = Notice.PAGE, medium: Medium = Medium.SMS, **over: object) -> Claimed:
    args: dict[str, object] = {
        "notification_id": 1,
        "attempts": 1,
        "recipient": "09012345678" if medium is Medium.SMS else "taro@example.jp",
        "biller_name": "東京ガス",
        "bill": BILL,
        "kind": kind,
        "medium": medium,
        "ref": {Notice.REMINDER: "2026-12-20", Notice.RECEIVED: "pay_1"}.get(kind, "0"),
        "rules": EVERYTHING,
        "payment": PAYMENT if kind is Notice.RECEIVED else None,
    }
    args.update(over)
    return Claimed(**args)  # type: ignore[arg-type]


def test_the_media_a_notice_goes_by() -> None:
    def media(**kw: object) -> list[Medium]:
        args: dict[str, object] = {
            "email": "a@example.jp",
            "phone": "09012345678",
            "opted_out": (),
            "configured": (Medium.EMAIL, Medium.SMS),
        }
        args.update(kw)
        return media_for(EVERYTHING, Notice.PAGE, **args)  # type: ignore[arg-type]

    assert media() == [Medium.EMAIL, Medium.SMS]
    assert media(phone="0312345678") == [Medium.EMAIL]  # a landline takes no SMS
    assert media(email=None) == [Medium.SMS]
    assert media(opted_out=(Medium.SMS,)) == [Medium.EMAIL]
    assert media(configured=(Medium.EMAIL,)) == [Medium.EMAIL]  # no [sms]
    assert (
        media_for(
            NoticeRules(),
            Notice.REMINDER,
            email="a@x.jp",
            phone=None,
            opted_out=(),
            configured=(Medium.EMAIL,),
        )
        == []
    )  # the default: no reminder


@pytest.mark.parametrize(
    ("c", "reason"),
    [
        (claimed(), None),
        (claimed(opted_out=True), "the customer opted out of sms notices"),
        (claimed(rules=NoticeRules()), "the biller no longer sends page notices by sms"),
        (claimed(recipient="0312345678"), "not a mobile number"),
        (claimed(Notice.PAGE, Medium.EMAIL, recipient=None), "no e-mail address"),
        (claimed(bill=replace(BILL, status=BillStatus.PAID)), "bill is paid"),
        (claimed(bill=replace(BILL, reissue=1)), "the bill was reissued since"),
        (claimed(Notice.FALLBACK, ref="1", bill=replace(BILL, reissue=1)), None),
        (claimed(Notice.REMINDER), None),
        (claimed(Notice.REMINDER, ref="2026-12-15"), "the due date changed since"),
        (claimed(Notice.RECEIVED, bill=replace(BILL, status=BillStatus.PAID)), None),
        (
            claimed(Notice.RECEIVED, payment=replace(PAYMENT, status=PaymentStatus.VOIDED)),
            "the payment was voided",
        ),
    ],
)
def test_a_claimed_notice_goes_only_while_it_is_true(c: Claimed, reason: str | None) -> None:
    assert skip_reason(c, TODAY) == reason


def test_the_words_are_the_billers_or_the_defaults() -> None:
    url = "https://pay.example.jp/p/TOKEN"
    assert sms_text(claimed(), url) == (
        f"【東京ガス】ご請求 ¥5,400（期限 2026年12月20日）のお支払いはこちら {url}"
    )
    received = claimed(Notice.RECEIVED)
    assert values(received, url)["paid_at"] == "2026年12月9日 10:30"
    own = replace(EVERYTHING, templates=(("sms.page", "{name}様 {bill_no} {ways} {url}"),))
    assert sms_text(claimed(rules=own), url) == f"山田 太郎様 B-1 コンビニ・ペイジー {url}"
    with pytest.raises(ValueError, match="over 660"):
        sms_text(
            claimed(rules=replace(EVERYTHING, templates=(("sms.page", "{url}" * 20),))), url * 2
        )


def test_an_sms_of_660_characters_goes_and_a_longer_one_is_refused_not_cut() -> None:
    def text(template: str) -> str:
        return sms_text(claimed(rules=replace(EVERYTHING, templates=(("sms.page", template),))), "")

    assert text("あ" * 660) == "あ" * 660
    with pytest.raises(ValueError, match="661 characters, over 660"):
        text("あ" * 661)
    # A character outside the BMP is two for the carrier: 659 + 2 is over.
    with pytest.raises(ValueError, match="661 characters, over 660"):
        text("あ" * 659 + "𠮷")


def test_a_bill_whose_amount_the_payer_chooses_is_told_its_range_not_zero() -> None:
    chosen = replace(BILL, amount=0, min_amount=1_000, max_amount=50_000)
    url = "https://pay.example.jp/p/TOKEN"
    assert values(claimed(bill=chosen), url)["amount"] == "¥1,000〜¥50,000"
    paid = replace(PAYMENT, amount=3_000)
    assert values(claimed(Notice.RECEIVED, bill=chosen, payment=paid), url)["amount"] == "¥3,000"
