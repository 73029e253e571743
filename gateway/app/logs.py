"""Logging for operators: ``twistd --logger gateway.app.logs.json_observer -n gateway -c FILE``.

One JSON object per line on stdout (twisted.logger's own event format, with ``log_format``,
``log_level``, ``log_namespace``, ``log_time`` and the event's fields), for a log shipper.
Messages use ``{field}`` formats, so fields stay separate; no module logs API keys, customer
data or bill contents.
"""

from __future__ import annotations

import sys

from twisted.logger import ILogObserver, jsonFileLogObserver


def json_observer() -> ILogObserver:
    return jsonFileLogObserver(sys.stdout, recordSeparator="")
