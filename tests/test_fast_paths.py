"""The faster forms that bulk registration brought give what the plain forms gave: the request
fingerprint, the mod-10 check digits, the stamp threshold, a bill's customer in its JSON."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, date, datetime

from hypothesis import given
from hypothesis import strategies as st

from gateway.billing.bills import bill_json
from gateway.mappers.cvs import barcode
from gateway.mappers.cvs.stamp import StampThreshold, threshold_on
from gateway.model import Bill, BillTerms, Channel, Customer, Tax
from gateway.validation import Fields

texts = st.one_of(st.none(), st.text(max_size=12))
customers = st.builds(Customer, texts, texts, texts, texts, texts)
terms = st.builds(
    BillTerms,
    st.text(min_size=1, max_size=10),
    st.integers(1, 10**10),
    st.dates(),
    st.frozensets(st.sampled_from(list(Channel)), min_size=1),
    customers,
    st.builds(Tax, st.booleans(), st.integers(0, 10**6)),
    texts,
)


def reference_fingerprint(t: BillTerms) -> str:
    """BillTerms.fingerprint as first written (dataclasses.asdict), before payer-chosen
    amounts: a bill of a set amount keeps the fingerprint stored for it then."""
    doc = dataclasses.asdict(t)
    if t.max_amount is None:
        del doc["min_amount"], doc["max_amount"]
    doc["channels"] = sorted(t.channels)
    doc["due_date"] = t.due_date.isoformat()
    blob = json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def reference_mod10_31(digits: str) -> int:
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return (10 - total % 10) % 10


@given(terms)
def test_fingerprint(t: BillTerms) -> None:
    assert t.fingerprint() == reference_fingerprint(t)


@given(st.text(alphabet="0123456789", min_size=1, max_size=60))
def test_mod10_31(digits: str) -> None:
    from gateway.mappers.mpn import numbers as payeasy

    assert barcode._mod10_31(digits) == reference_mod10_31(digits)
    assert payeasy._mod10_31(digits) == reference_mod10_31(digits)


@given(
    st.lists(st.builds(StampThreshold, st.dates(), st.integers(1, 10**6)), max_size=5),
    st.dates(),
)
def test_threshold_on(thresholds: list[StampThreshold], on: date) -> None:
    applicable = [t for t in thresholds if t.effective_from <= on]
    expected = max(applicable, key=lambda t: t.effective_from, default=None)
    assert threshold_on(thresholds, on) == expected


@given(customers)
def test_customer_in_bill_json(customer: Customer) -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    bill = Bill("b", "n", 1, None, frozenset(), customer, Tax(), None, at, at)
    doc = bill_json(bill, "https://x", None)  # type: ignore[arg-type]  # no slip: no issuer
    assert doc["customer"] == {
        k: v for k, v in dataclasses.asdict(customer).items() if v is not None
    }


@given(st.text(max_size=20))
def test_control_characters(value: str) -> None:
    f = Fields({"s": value})
    f.string("s", min_len=0, max_len=100)
    has_control = any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)
    assert any("control" in e.message for e in f.errors) == has_control
