"""The seed inputs of the committed corpora (``python -m tests.fuzz seed`` writes them).

Seeds come from the shared vectors (``/work/shared/vectors/``, copied into tests/fixtures/ as
their README says) and the tests' fixtures and samples: valid inputs, so that the fuzzer starts
from the inside of each format, and the fixtures' invalid ones. Each file is named
``seed-<what>``; inputs the fuzzer found and ``merge`` added are named by their SHA-1.
"""

from __future__ import annotations

import codecs
import json
import struct
from datetime import date, datetime
from pathlib import Path

from gateway.mappers.cvs.mapper import split_records
from gateway.mappers.mpn.mapper import (
    Ack,
    Body,
    Cancel,
    Close,
    Echo,
    Header,
    Inquiry,
    InquiryAnswer,
    Key,
    Message,
    Open,
    PaymentChannel,
    PaymentNotice,
    ResendCheck,
    build_message,
)
from gateway.model import JST
from tests.fuzz.registry import TARGETS

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
EXAMPLES = ROOT / "conf"
#: Both link seeds read 256 bytes at a time; the cores answer every call at once (0) or in turn
#: at once, later, with a failure and with nonsense (0b11100100).
AT_ONCE, IN_TURN = b"\xff\x00", b"\xff\xe4"


def _files(folder: Path, pattern: str) -> dict[str, bytes]:
    return {f"seed-{p.stem}": p.read_bytes() for p in sorted(folder.glob(pattern))}


def _cvs_records() -> dict[str, bytes]:
    records: dict[str, bytes] = {}
    files = _files(FIXTURES / "cvs", "*.txt")
    valid_first = sorted(files.items(), key=lambda item: item[0] != "seed-result_file")
    for name, data in valid_first:
        for no, record in enumerate(split_records(data), 1):
            if record[:1] == b"2" and record not in records.values():
                records[f"{name}-record{no}"] = record
    return records


def _cvs_frames() -> dict[str, bytes]:
    def frame(payload: bytes) -> bytes:
        return struct.pack("!H", len(payload)) + payload

    records = list(_cvs_records().values())[:4]
    data = b"".join(frame(b"DT%010d" % i + r) for i, r in enumerate(records, 1))
    beats = frame(b"HB0000000001") + frame(b"HA0000000001")
    odd = frame(b"DT0000000009" + records[0][:60]) + frame(b"XX?") + frame(b"HB12")
    return {
        "seed-dt": AT_ONCE + data,
        "seed-dt-in-turn": IN_TURN + data + beats,
        "seed-heartbeats": AT_ONCE + beats,
        "seed-odd-frames": AT_ONCE + odd + data[: len(data) // 2],
        "seed-bad-sequence": AT_ONCE + frame(b"DTxyz"),
        "seed-too-long": AT_ONCE + struct.pack("!H", 2000) + b"DT" * 8,
    }


DAY = date(2026, 11, 23)
KEY = Key("12345", "1234500000000017", "123456")
PAYMENT = PaymentNotice(
    KEY, 12000, datetime(2026, 11, 23, 9, 30, 15, tzinfo=JST), "0005", PaymentChannel.INTERNET
)
MPN_BODIES: dict[str, Body] = {
    "1000": Open("12345", DAY),
    "1010": Open("12345", DAY),
    "1100": Inquiry(KEY),
    "1110": InquiryAnswer(KEY, 12000, date(2026, 11, 30), "ｶﾌﾞｼｷｶﾞｲｼｬ ｻﾝﾌﾟﾙ"),
    "1200": PAYMENT,
    "1210": Ack(KEY),
    "1300": Cancel("0001", DAY, "00000043", KEY, 12000),
    "1310": Ack(KEY),
    "1400": ResendCheck(PAYMENT),
    "1410": Ack(KEY),
    "1800": Echo(),
    "1810": Echo(),
    "1900": Close(DAY, 3, 36000, 1, 12000),
    "1910": Close(DAY, 3, 36000, 1, 12000),
}


def _mpn(type_: str, serial: int, center: str = "0001", code: str = "0000") -> bytes:
    header = Header(type_, center, DAY, f"{serial:08d}", code)
    return build_message(Message(header, MPN_BODIES[type_]))


def _mpn_frames() -> dict[str, bytes]:
    def frame(message: bytes) -> bytes:
        return struct.pack("!I", len(message)) + message

    opened = frame(_mpn("1010", 1, center="0009"))  # the answer to the gateway's 1000
    requests = b"".join(frame(_mpn(t, n)) for n, t in enumerate(("1100", "1200", "1300", "1400")))
    echo = frame(_mpn("1800", 9)) + frame(_mpn("1810", 2, center="0009"))
    closed = frame(_mpn("1910", 2, center="0009"))  # the answer to 閉局, the gateway's serial 2
    bad = frame(_mpn("1200", 7)[:-3] + b"XYZ") + frame(b"1100garbage")
    return {
        "seed-open-requests": AT_ONCE + opened + requests + echo + closed,
        "seed-open-in-turn": IN_TURN + opened + requests + requests + closed,
        "seed-not-open": AT_ONCE + requests,
        "seed-bad-messages": AT_ONCE + opened + bad + requests,
        "seed-refused-open": AT_ONCE + frame(_mpn("1010", 1, center="0009", code="9001")),
    }


BILLS_HEADER = "bill_no,amount,due_date,channels,customer_no,name,kana,email,phone,description"
BILLS_ROW = (
    "INV-1,5400,2026-12-15,cvs;payeasy,C0001,山田 太郎,ﾔﾏﾀﾞ ﾀﾛｳ,t@example.jp,09012345678,12月分"
)
BILLS_TEXT = (
    f"{BILLS_HEADER},taxable,tax_amount\r\n{BILLS_ROW},true,490\r\n"
    'INV-2,"1,000",2026/1/5,transfer,,"名前, ""引用""",,,,,0,\r\n'
    "INV-1,12,,cvs,,,,,,,,\r\n"
)

BILL = {
    "bill_no": "INV-2026-000123",
    "amount": 5400,
    "due_date": "2026-12-15",
    "channels": ["cvs", "payeasy", "transfer"],
    "customer": {
        "customer_no": "C0001",
        "name": "山田 太郎",
        "kana": "ﾔﾏﾀﾞ ﾀﾛｳ",
        "email": "taro@example.jp",
        "phone": "09012345678",
    },
    "tax": {"taxable": True, "tax_amount": 490},
    "description": "12月分 利用料",
}
BODIES = {
    "bill": BILL,
    "mandate": {
        "bank_code": "0005",
        "branch_code": "135",
        "account_type": "1",
        "account_number": "7654321",
        "holder_kana": "ショウジ　キョウコ",
    },
    "endpoint": {"url": "https://hooks.example.com/gateway", "events": ["bill.created"]},
    "endpoint-all": {"url": "https://[2001:db8::1]:8443/h?x=1", "events": ["*"]},
    "redeliver": {"endpoint_id": "we_0123456789abcdef01234567"},
    "plan": {
        "effective_from": "2026-11-23",
        "cycle": "monthly",
        "payout_days": 3,
        "settlement_fee": 500,
        "tax_rate": 10,
        "tax_rounding": "floor",
        "channels": {
            "cvs": {"per_payment": 60, "per_uncollected": 10, "stamp_charge": 200},
            "payeasy": {"per_payment": 80},
        },
    },
    "biller": {
        "biller_id": "gas",
        "name": "東京ガス株式会社",
        "kana": "ﾄｳｷﾖｳｶﾞｽ",
        "channels": ["cvs", "payeasy", "transfer"],
        "payeasy_institution_code": "58191",
        "cvs_agency": "default",
    },
    "reissue": {"amount": 6000, "due_date": "2026-12-31"},
    "resolve": {"resolution": "refunded", "note": "返金済み"},
    "empty": {},
}


def seeds() -> dict[str, dict[str, bytes]]:
    """Target name → seed name → bytes."""
    cvs_files = _files(FIXTURES / "cvs", "*.txt")
    return {
        "cvs_record": _cvs_records(),
        "cvs_file": cvs_files,
        "cvs_agency": _files(FIXTURES / "cvs", "*.csv"),
        "cvs_link": _cvs_frames(),
        "mpn_message": {f"seed-{t}": _mpn(t, 43) for t in MPN_BODIES},
        "mpn_link": _mpn_frames(),
        "zengin_file": _files(FIXTURES / "zengin", "*.txt"),
        "bills_csv": {
            "seed-utf8": b"\x00" + BILLS_TEXT.encode(),
            "seed-utf8-bom-declared": b"\x01" + codecs.BOM_UTF8 + BILLS_TEXT.encode(),
            "seed-sjis-declared": b"\x02" + BILLS_TEXT.encode("cp932"),
            "seed-sjis-guessed": b"\x00" + BILLS_TEXT.encode("cp932"),
            "seed-latin1": b"\x03" + BILLS_TEXT.encode(),
        },
        "api_json": {
            f"seed-{name}": json.dumps(doc, ensure_ascii=name == "bill").encode()
            for name, doc in BODIES.items()
        },
        "config": _files(EXAMPLES, "*.example.toml"),
    }


def write_seeds() -> None:
    for name, inputs in seeds().items():
        folder = TARGETS[name].corpus
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("seed-*"):
            old.unlink()
        for seed, data in inputs.items():
            (folder / seed).write_bytes(data)
        print(f"{name}: {len(inputs)} seeds in {folder.relative_to(ROOT)}")
