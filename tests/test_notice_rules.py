"""A biller's notice rules (gateway.notice_rules): defaults, changes as the API and the command
line give them, templates and their placeholders, what the store keeps."""

from __future__ import annotations

import pytest

from gateway.notice_rules import (
    DEFAULT_TEMPLATES,
    FallbackPolicy,
    FallbackWay,
    Medium,
    Notice,
    NoticeRules,
    fill,
    is_mobile,
    parse_rules_change,
    sms_length,
    sms_segments,
    template_errors,
)
from gateway.validation import Fields


def change(fallback: object = None, notices: object = None, current: NoticeRules | None = None):
    f = Fields(fallback, "fallback") if fallback is not None else None
    n = Fields(notices, "notices") if notices is not None else None
    rules = parse_rules_change(f, n, current or NoticeRules())
    errors = [] if f is None else f.errors + f.malformed
    errors += [] if n is None else n.errors + n.malformed
    return rules, sorted({(e.field, e.message) for e in errors})


def test_the_defaults_send_the_page_by_e_mail_and_start_no_fallback() -> None:
    rules = NoticeRules()
    assert rules.fallback.ways == frozenset()
    assert rules.media(Notice.PAGE) == {Medium.EMAIL}
    assert rules.media(Notice.FALLBACK) == {Medium.EMAIL, Medium.SMS}
    assert rules.media(Notice.REMINDER) == frozenset() == rules.media(Notice.RECEIVED)
    assert rules.to_json() is None and NoticeRules.from_json(None) == rules
    assert rules.document() == {
        "fallback": {"ways": [], "due_days": 14, "redebit_days": 14},
        "notices": {
            "page": ["email"],
            "fallback": ["email", "sms"],
            "reminder": [],
            "received": [],
            "reminder_days": 3,
            "templates": {},
        },
    }


def test_a_change_replaces_only_the_parts_it_names_and_round_trips() -> None:
    rules, errors = change(
        {"ways": ["redebit", "cvs"], "redebit_days": 20},
        {"reminder": ["sms"], "templates": {"sms.page": "{biller}: {url}"}},
    )
    assert errors == []
    assert rules.fallback == FallbackPolicy(
        frozenset({FallbackWay.CVS, FallbackWay.REDEBIT}), 14, 20
    )
    assert rules.fallback.redebit and rules.fallback.channels == {FallbackWay.CVS}
    assert rules.media(Notice.REMINDER) == {Medium.SMS}
    assert rules.media(Notice.PAGE) == {Medium.EMAIL}  # unchanged
    assert rules.template("sms.page") == "{biller}: {url}"
    assert rules.template("sms.fallback") == DEFAULT_TEMPLATES["sms.fallback"]
    assert NoticeRules.from_json(rules.to_json()) == rules
    hash(rules)  # a Biller holds it: frozen and hashable

    # A template set to null is the default again; ways [] is no fallback.
    back, errors = change({"ways": []}, {"templates": {"sms.page": None}}, rules)
    assert errors == [] and back.fallback.ways == frozenset() and back.templates == ()


def test_every_bad_part_is_named() -> None:
    _, errors = change(
        {"ways": ["cvs", "card", "cvs"], "due_days": 0, "extra": 1},
        {
            "page": ["fax"],
            "reminder_days": 99,
            "templates": {
                "sms.page": "{url} {url.__class__} {",
                "sms.x": "y",
                "sms.received": "two\nlines",
                "email.page": 5,
            },
        },
    )
    assert errors == [
        ("fallback.due_days", "must be between 1 and 365"),
        ("fallback.extra", "unknown field"),
        ("fallback.ways[1]", "'card' is not one of cvs, payeasy, redebit"),
        ("fallback.ways[2]", "cvs is listed twice"),
        ("notices.page[0]", "'fax' is not one of email, sms"),
        ("notices.reminder_days", "must be between 1 and 60"),
        ("notices.templates.email.page", "must be a non-empty string or null"),
        ("notices.templates.sms.page", "a single brace: write {{ or }} for a brace"),
        (
            "notices.templates.sms.page",
            "{url.__class__} is not a placeholder (known: {biller}, {name}, {bill_no}, "
            "{amount}, {due_date}, {url}, {ways}, {paid_at})",
        ),
        ("notices.templates.sms.received", "must be one line"),
        (
            "notices.templates.sms.x",
            "is not a template (known: subject.page, subject.fallback, subject.reminder, "
            "subject.received, email.page, email.fallback, email.reminder, email.received, "
            "sms.page, sms.fallback, sms.reminder, sms.received)",
        ),
    ]


def test_templates_fill_only_their_placeholders() -> None:
    values = {"url": "https://pay.example/p/T", "biller": "ガス"}
    assert fill("{biller} {{url}} {url}", values) == "ガス {url} https://pay.example/p/T"
    assert fill("{name}", values) == ""  # a value not given: empty, never a KeyError
    assert template_errors("{url} {{ok}}") == []
    for key, text in DEFAULT_TEMPLATES.items():
        assert template_errors(text) == [], key


@pytest.mark.parametrize(
    ("phone", "mobile"),
    [
        ("09012345678", True),
        ("08011112222", True),
        ("07011112222", True),
        ("06011112222", True),
        ("0312345678", False),  # Tokyo landline
        ("05012345678", False),  # IP phone
        ("0901234567", False),
        (None, False),
    ],
)
def test_an_sms_goes_to_a_mobile_number_only(phone: str | None, mobile: bool) -> None:
    assert is_mobile(phone) is mobile


@pytest.mark.parametrize(
    ("length", "segments"),
    [(1, 1), (70, 1), (71, 2), (134, 2), (135, 3), (201, 3), (202, 4), (660, 10)],
)
def test_an_sms_is_billed_one_message_to_70_characters_then_one_per_67(
    length: int, segments: int
) -> None:
    text = "あ" * length  # Japanese: UCS-2, whatever the character
    assert sms_length(text) == length
    assert sms_segments(text) == segments
    assert sms_segments("a" * length) == segments  # Latin letters count alike (no GSM-7 here)


def test_a_character_outside_the_bmp_counts_two_and_is_never_split() -> None:
    assert sms_length("𠮷野家") == 4
    assert sms_segments("𠮷" * 35) == 1  # 70 units
    assert sms_segments("あ" + "𠮷" * 35) == 2  # 71 units
    # 66 units, then a character of two that does not fit in the first part's 67: it starts
    # the second part, which it fills to 67 with 65 more (134 units in all, yet 3 parts).
    assert sms_segments("あ" * 66 + "𠮷" + "あ" * 66) == 3
    assert sms_segments("あ" * 67 + "𠮷" + "あ" * 65) == 2
