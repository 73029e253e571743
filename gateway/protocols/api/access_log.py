"""The API listener's access log, with payment-page tokens masked.

A page token is the only secret of ``/p/{token}``: whoever has it sees the bill. The access log
(twisted.web's combined log format) keeps only its first 4 characters, in the request line and in
the Referer: ``GET /p/AbCd… HTTP/1.1`` is written ``GET /p/AbCd**** HTTP/1.1``. The console's
query strings (its searches) are cut too: ``GET /console/bills?**** HTTP/1.1``.
"""

from __future__ import annotations

import re
from typing import Any

from twisted.web.http import combinedLogFormatter
from twisted.web.iweb import IAccessLogFormatter
from zope.interface import provider

KEPT = 4
_TOKEN = re.compile(rb"(/p/)([A-Za-z0-9_\-]{0,%d})[^/?#\s\"]*" % KEPT)


# The console's query strings (a search for a customer number, a name): never in the log.
_CONSOLE_QUERY = re.compile(rb"(/console/[^?#\s\"]*\?)[^#\s\"]*")


def mask_page_tokens(text: bytes) -> bytes:
    """``text`` with every ``/p/<token>`` cut to the token's first characters and ``****``, and
    the query string of every console path (``/console/bills?q=…``) cut to ``****``."""
    text = _CONSOLE_QUERY.sub(lambda m: m.group(1) + b"****", text)
    return _TOKEN.sub(lambda m: m.group(1) + m.group(2) + b"****", text)


def mask_path(path: str) -> str:
    """The same for a ``str`` (a path in a log message)."""
    return mask_page_tokens(path.encode("utf-8", "replace")).decode("utf-8", "replace")


class _MaskedRequest:
    """The request as the log formatter reads it, with tokens masked."""

    def __init__(self, request: Any) -> None:
        self._request = request

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)

    @property
    def uri(self) -> bytes:
        return mask_page_tokens(self._request.uri)

    def getHeader(self, name: bytes | str) -> bytes | str | None:
        value: bytes | str | None = self._request.getHeader(name)
        if isinstance(value, bytes):
            return mask_page_tokens(value)
        return mask_path(value) if value is not None else None


@provider(IAccessLogFormatter)
def masked_log_formatter(timestamp: str, request: Any) -> str:
    """:func:`twisted.web.http.combinedLogFormatter` with page tokens masked."""
    line: str = combinedLogFormatter(timestamp, _MaskedRequest(request))
    return line
