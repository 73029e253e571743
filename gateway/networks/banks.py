"""What the Zengin bank master says about the bank a payment went through, for the networks
that pay through banks (gateway.networks.mpn, gateway.networks.zengin) to describe their
payments' place. Read on a receipt's pool thread: the master is loaded on first use."""

from __future__ import annotations

from typing import Any

from gateway.billing.mandates import master_bank


def bank_place(bank_code: str) -> tuple[str, Any]:
    """The bank as a receipt names it (the master's name and its code, or the code alone) and
    the master's bank (``branches``…), or None when the master does not know it."""
    found = master_bank(bank_code)
    if found is None:
        return f"金融機関コード {bank_code}", None
    return f"{found.name}（金融機関コード {bank_code}）", found
