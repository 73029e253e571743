"""Issuing a slip under the biller's chain rules (gateway.chain_rules): the due window of every
chain it accepts must take the slip's due date; and where a slip can be paid, as its payment page
tells the customer (:func:`paying_chains`).

A bill with the cvs channel, created (``POST /v1/bills``, a bulk file's row) or reissued, is
refused with 422 naming ``due_date`` when its due date is further from today than the
shortest window among the chains the biller accepts (or when it has no due date and one of
them has a window): a customer could not pay it at that chain, whose register refuses a slip
due further ahead than its contract allows. Bills without the cvs channel are not concerned.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, timedelta

from gateway.chain_rules import ChainRules
from gateway.errors import FieldError
from gateway.mappers.cvs.mapper import APP_CHAINS, STORE_CHAINS, chain_name
from gateway.model import Biller, Channel


def chain_label(code: str) -> str:
    """``"010 (セブン-イレブン)"``: a chain code with its §5 name when it has one."""
    name = chain_name(code)
    return f"{code} ({name})" if name else code


@dataclass(frozen=True)
class PayingChains:
    """Where a slip of the biller can be paid, in Japanese names, in the order of spec/cvs.md
    §5: convenience-store chains, payment apps that read the barcode, and any other chain the
    biller accepts (the post office, a code §5 does not name)."""

    stores: tuple[str, ...]
    apps: tuple[str, ...] = ()
    others: tuple[str, ...] = ()
    limited: bool = False  # the biller accepts only these; False: every chain of the center


def _name(code: str) -> str:
    return chain_name(code) or f"チェーンコード{code}"


def paying_chains(rules: ChainRules) -> PayingChains:
    """The chains that take the biller's slips: those it accepts, or, with no restriction,
    every convenience-store chain and payment app the center handles (spec/cvs.md §5)."""
    accepted = rules.accepted
    if accepted is None:
        return PayingChains(
            tuple(_name(c) for c in STORE_CHAINS), tuple(_name(c) for c in APP_CHAINS)
        )
    known = (*STORE_CHAINS, *APP_CHAINS)
    others: list[str] = []
    for code in sorted(accepted - set(known)):
        name = _name(code)
        if name not in others:  # 910 and 911 are both 郵便局
            others.append(name)
    return PayingChains(
        tuple(_name(c) for c in STORE_CHAINS if c in accepted),
        tuple(_name(c) for c in APP_CHAINS if c in accepted),
        tuple(others),
        limited=True,
    )


def due_window_refusals(
    biller: Biller, channels: Collection[Channel], due: date | None, today: date
) -> list[FieldError]:
    """Why the biller's chain rules refuse a slip due ``due`` (None: no deadline) issued
    ``today``: one error naming ``due_date`` and the chain, or none."""
    if Channel.CVS not in channels:
        return []
    refused = biller.chain_rules.due_refusal(due, today)
    if refused is None:
        return []
    chain, days = refused
    window = f"chain {chain_label(chain)} takes slips due at most {days} days after they are issued"
    if due is None:
        return [FieldError("due_date", f"is required: {window} (the biller's chain rules)")]
    ahead = (due - today).days
    return [
        FieldError(
            "due_date",
            f"{due.isoformat()} is {ahead} days from today: {window} (the biller's chain rules;"
            f" {(today + timedelta(days=days)).isoformat()} at the latest)",
        )
    ]
