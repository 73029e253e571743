"""What both simulated Zengin banks share: a weighted mix of answer codes (``0=90,1=5``) and
per-customer overrides, checked the same way. Each bank says which codes it answers
(``code_error``) and what it calls the customer's key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CodeRules:
    #: why a code is not one the bank answers, or None
    code_error: Callable[[object], str | None]
    #: what the override keys are, e.g. "顧客番号"
    customer_label: str
    #: an example mix for error messages, e.g. "0=90,1=5"
    example: str
    customer_length: int = 20

    def check(self, mix: Mapping[str, int], overrides: Mapping[str, str]) -> None:
        """Raise :class:`ValueError` naming ``mix`` or ``overrides`` if either is unusable."""
        for code, weight in mix.items():
            why = self.code_error(code)
            if why is None and (
                not isinstance(weight, int) or isinstance(weight, bool) or weight < 0
            ):
                why = f"the weight of {code!r} is {weight!r}, not a whole number >= 0"
            if why:
                raise ValueError(f"mix: {why}")
        if sum(mix.values()) <= 0:
            raise ValueError("mix: the weights add up to 0; give at least one code a weight")
        for customer, code in overrides.items():
            if not isinstance(customer, str) or not 0 < len(customer) <= self.customer_length:
                raise ValueError(
                    f"overrides: {customer!r} is not a {self.customer_label} "
                    f"(1 to {self.customer_length} characters)"
                )
            why = self.code_error(code)
            if why:
                raise ValueError(f"overrides: {customer}: {why}")

    def parse_mix(self, text: str) -> dict[str, int]:
        """``0=90,1=5,E=1`` as ``{"0": 90, "1": 5, "E": 1}``; :class:`ValueError` says what is
        wrong (without the option's name)."""
        mix: dict[str, int] = {}
        for item in text.split(","):
            code, sep, weight = item.strip().partition("=")
            if not sep or not (weight.strip().isascii() and weight.strip().isdigit()):
                raise ValueError(f"{item.strip()!r} is not CODE=WEIGHT (e.g. {self.example})")
            code = code.strip()
            if code in mix:
                raise ValueError(f"code {code!r} is given twice")
            mix[code] = int(weight)
        try:
            self.check(mix, {})
        except ValueError as e:
            raise ValueError(str(e).removeprefix("mix: ")) from None
        return mix


def free_name(folder: Path, name: str) -> Path:
    """``folder/name``, or ``name.1``, ``name.2``... if taken (with its report)."""
    target, n = folder / name, 1
    while target.exists() or target.with_name(target.name + ".report.txt").exists():
        target, n = folder / f"{name}.{n}", n + 1
    return target


__all__ = ["CodeRules", "free_name"]
