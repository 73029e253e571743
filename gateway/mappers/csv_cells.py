"""Cells of every CSV file the gateway writes (statements, payments, daily reports, the bulk
result and errors files): a cell a spreadsheet would run as a formula is kept as text.

Text that begins with ``=``, ``+``, ``-``, ``@``, a tab or a CR gets a leading ``'`` (Excel and
LibreOffice then show it as it is: ``=HYPERLINK(...)`` in a bill_no or a customer's name is not
a link). Every ``str`` cell is escaped, whoever wrote it; numbers the gateway itself produces
are ``int`` cells and are written as they are, so ``-1200`` stays a number a spreadsheet sums.
``None`` is an empty cell.
"""

from __future__ import annotations

from collections.abc import Iterable

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def text_cell(value: str) -> str:
    """A text cell a spreadsheet shows as text, not runs as a formula."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def cells(row: Iterable[object]) -> list[object]:
    """A row ready for ``csv.writer``: text escaped, ``None`` empty, numbers as they are."""
    return ["" if v is None else text_cell(v) if isinstance(v, str) else v for v in row]
