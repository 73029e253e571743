"""A biller's convenience-store chain rules (issue 22): which chains it accepts, how far ahead
a slip's due date may be at each chain, and which chains stamp every receipt of the stamp
threshold or more whatever the tax.

Rules
-----

- **Chain codes** are the §5 codes of spec/cvs.md, 1-6 digits; they are compared as numbers and
  written with at least 3 digits (``20``, ``020`` and ``000020`` are ``020``, Lawson).
- **Accepted chains** (``accepted``): ``None`` accepts every chain. A payment made at a chain
  the biller does not accept is still a payment — the store took the money — and pays its bill
  as any other; it is flagged (``chain_accepted: false`` on the payment and in its events) for
  the biller to take up with its agency.
- **Due windows** (``max_due_days``): per chain, the longest time, in days, from the day a slip
  is issued (a bill created or reissued) to its due date. A slip is issued only if every chain
  the biller accepts that has a window takes it; a slip without a deadline (``999999``) is
  taken by no chain that has one. The refusal names ``due_date``.
- **Stamp chains** (``stamp_all``): chains that stamp every receipt of the stamp threshold
  (¥50,000 since 2014-04-01) or more, comparing the amount paid whatever the tax, where the
  slip's 印紙フラグ compares a taxable bill's tax-exclusive amount. The stamp charge of the
  settlement follows the chain that took the payment (:func:`receipt_stamped` is the rule,
  ``gateway.mappers.cvs.stamp.receipt_stamped`` applies it with the dated thresholds).

Pure values: no I/O, no clock. :meth:`ChainRules.to_json` and :meth:`ChainRules.from_json`
are how ``billers.chain_rules`` keeps them (``NULL``: the defaults, every chain and no rule).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from gateway.validation import Fields

CHAIN_CODE = r"[0-9]{1,6}"  # as the API and the command line take it
MAX_DUE_DAYS = 3650  # a window longer than ten years says nothing
MAX_CHAINS = 100  # codes in one list: §5 has 15


def chain_code(raw: str) -> str:
    """A chain code as the rules keep it: at least 3 digits (``"000020"`` → ``"020"``).
    ``ValueError`` for anything but 1-6 ASCII digits."""
    if not re.fullmatch(CHAIN_CODE, raw):
        raise ValueError(f"{raw[:10]!r} is not a chain code (1-6 digits)")
    return f"{int(raw):03d}"


def chain_of_store(store: str | None) -> str | None:
    """The chain code of a CVS payment's ``store`` (``CHAIN-STORE``), as the rules keep it."""
    if not store:
        return None
    head = store.partition("-")[0]
    try:
        return chain_code(head)
    except ValueError:
        return None


@dataclass(frozen=True)
class ChainRules:
    """What one biller asks of the chains (the defaults: every chain, no window, no stamp
    chain)."""

    accepted: frozenset[str] | None = None  # None: every chain
    due_windows: tuple[tuple[str, int], ...] = ()  # (chain, days), in chain order
    stamp_all: frozenset[str] = frozenset()

    @property
    def is_default(self) -> bool:
        return self.accepted is None and not self.due_windows and not self.stamp_all

    def accepts(self, chain: str) -> bool:
        """Whether a payment at ``chain`` (any width) is at a chain the biller accepts."""
        return self.accepted is None or chain_code(chain) in self.accepted

    def stamps_all(self, chain: str) -> bool:
        """Whether ``chain`` stamps every receipt of the threshold or more whatever the tax."""
        return chain_code(chain) in self.stamp_all

    def windows(self) -> list[tuple[str, int]]:
        """The due windows that bind a new slip: those of the chains the biller accepts,
        shortest first (then by chain)."""
        binding = [
            (c, d) for c, d in self.due_windows if self.accepted is None or c in self.accepted
        ]
        return sorted(binding, key=lambda w: (w[1], w[0]))

    def due_refusal(self, due: date | None, today: date) -> tuple[str, int] | None:
        """The (chain, days) whose window a slip issued ``today`` and due ``due`` (None: no
        deadline) does not fit, the shortest first; None when every binding chain takes it."""
        for chain, days in self.windows():
            if due is None or (due - today).days > days:
                return chain, days
        return None

    def document(self) -> dict[str, Any]:
        """The rules as the API and the command line show them."""
        return {
            "accepted": None if self.accepted is None else sorted(self.accepted),
            "max_due_days": dict(self.due_windows),
            "stamp_all": sorted(self.stamp_all),
        }

    def to_json(self) -> str | None:
        """What ``billers.chain_rules`` keeps (None for the defaults)."""
        if self.is_default:
            return None
        return json.dumps(self.document(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> ChainRules:
        if not text:
            return cls()
        doc = json.loads(text)
        return make_rules(doc.get("accepted"), doc.get("max_due_days") or {}, doc.get("stamp_all"))


def make_rules(
    accepted: Iterable[str] | None,
    due_windows: Mapping[str, int],
    stamp_all: Iterable[str] | None,
) -> ChainRules:
    """Rules from codes of any width (``ValueError`` for a code that is not one)."""
    windows = sorted((chain_code(c), int(d)) for c, d in due_windows.items())
    return ChainRules(
        None if accepted is None else frozenset(chain_code(c) for c in accepted),
        tuple(windows),
        frozenset(chain_code(c) for c in stamp_all or ()),
    )


def receipt_stamped(
    *, slip_flag: bool, stamps_all: bool, amount: int, threshold: int | None
) -> bool:
    """Whether the store stamped the receipt of a payment: always when the slip asked for it
    (印紙フラグ 1); at a chain that stamps every receipt of the threshold or more, also when the
    amount paid reaches the threshold in force that day (``None``: none in force)."""
    if slip_flag:
        return True
    return stamps_all and threshold is not None and amount >= threshold


# --- changing the rules: the API's body and the command line's flags --------------------------


def _codes(f: Fields, key: str, values: list[str]) -> frozenset[str]:
    codes: set[str] = set()
    if len(values) > MAX_CHAINS:
        f.bad(key, f"at most {MAX_CHAINS} chains")
    for i, raw in enumerate(values[:MAX_CHAINS]):
        try:
            code = chain_code(raw)
        except ValueError:
            f.bad(f"{key}[{i}]", f"{raw[:10]!r} is not a chain code (1-6 digits, e.g. 010)")
            continue
        if code in codes:
            f.bad(f"{key}[{i}]", f"chain {code} is listed twice")
        codes.add(code)
    return frozenset(codes)


def parse_rules_change(f: Fields, current: ChainRules) -> ChainRules:
    """The rules after a change given as the object ``f`` reads (the ``chain_rules`` of a
    ``PATCH /v1/billers/{id}`` body): each of ``accepted`` (a list of chain codes; ``null``:
    every chain), ``max_due_days`` (chain code → days; ``{}`` clears them) and ``stamp_all``
    (a list; ``[]`` clears it) that is present replaces that part, the others stay. Errors go
    to ``f`` (its path names them: ``chain_rules.max_due_days.010``)."""
    accepted = current.accepted
    if "accepted" in f.raw and f.raw["accepted"] is None:
        f.seen.add("accepted")
        accepted = None
    else:
        listed = f.string_list("accepted")
        if listed is not None:
            if not listed:
                f.bad("accepted", "must name at least one chain (null: every chain)")
            accepted = _codes(f, "accepted", listed)
    windows = dict(current.due_windows)
    w = f.obj("max_due_days")
    if w is not None:
        windows = {}
        for raw in list(w.raw)[: MAX_CHAINS + 1]:
            days = w.integer(raw, required=True, low=1, high=MAX_DUE_DAYS)
            try:
                code = chain_code(raw)
            except ValueError:
                w.bad(raw[:10], "is not a chain code (1-6 digits, e.g. 010)")
                continue
            if code in windows:
                w.bad(raw, f"chain {code} is given twice")
            if days is not None:
                windows[code] = days
        if len(w.raw) > MAX_CHAINS:
            f.bad("max_due_days", f"at most {MAX_CHAINS} chains")
    stamp_all = current.stamp_all
    listed = f.string_list("stamp_all")
    if listed is not None:
        stamp_all = _codes(f, "stamp_all", listed)
    f.finish()
    return ChainRules(accepted, tuple(sorted(windows.items())), stamp_all)
