"""An SMS provider, simulated: the REST endpoint the gateway's HTTP provider posts to
(gateway.protocols.sms_client), recording every message it takes (docs/notices.md).

``POST /v1/messages`` with ``Authorization: Bearer <key>`` and a JSON body
``{"to": "09012345678", "text": "…", "sender": "…", "reference": "…"}`` answers

- ``401`` without the key, ``400`` for a body that is not such an object (``to`` 10-11 digits,
  ``text`` 1-670 characters), ``422`` for a number that is not a mobile one (060/070/080/090);
- ``503`` for the first ``fail_first`` messages (to show the gateway's retries);
- ``202`` with ``{"id": "sim-000001", "status": "accepted"}`` otherwise; the message is recorded
  (and appended to ``record`` as one JSON line, if given). A message with a ``reference`` it has
  taken before is answered with the first one's id and not recorded again, as providers that
  deduplicate do.

``GET /v1/messages`` (with the key) lists what it took. It runs in a thread of its own with the
standard library's HTTP server, so a test or the demo can hold it beside the real daemon::

    provider = SmsProvider(key="k").start()      # 127.0.0.1, a free port
    provider.url                                  # http://127.0.0.1:PORT/v1/messages
    provider.wait_for(1)                          # the messages, once there is one
    provider.stop()

As a command, until SIGTERM or Ctrl-C, writing the messages to ``--record``::

    python -m simulators.sms --port 9090 --key KEY --record var/sms.jsonl [--fail-first 1]
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PATH = "/v1/messages"
NUMBER = re.compile(r"0[0-9]{9,10}")
MOBILE = re.compile(r"0[6789]0[0-9]{8}")
MAX_TEXT = 670


@dataclass(frozen=True)
class Message:
    id: str
    to: str
    text: str
    sender: str | None
    reference: str | None
    received_at: str


class SmsProvider:
    """The simulated provider: :meth:`start` it, read :attr:`messages`, :meth:`stop` it."""

    def __init__(self, key: str, fail_first: int = 0, record: Path | None = None) -> None:
        self.key = key
        self.fail_first = fail_first
        self.record = record
        self.messages: list[Message] = []
        self.refused = 0  # answered 503 (fail_first)
        self.requests = 0
        self._by_reference: dict[str, str] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- running ------------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> SmsProvider:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the gateway's pool expects

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                status, doc = provider.post(
                    self.path, self.headers.get("Authorization"), self._body()
                )
                self._answer(status, doc)

            def do_GET(self) -> None:
                if self.path != PATH:
                    return self._answer(404, {"error": "not found"})
                if not provider.authorized(self.headers.get("Authorization")):
                    return self._answer(401, {"error": "unauthorized"})
                self._answer(200, {"data": [asdict(m) for m in provider.messages]})

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(min(length, 65536))

            def _answer(self, status: int, doc: dict[str, Any]) -> None:
                body = json.dumps(doc, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Message]:
        """The messages, once there are at least ``count`` (AssertionError after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.05)
        raise AssertionError(f"{len(self.messages)} SMS received, expected {count}")

    # -- one request ---------------------------------------------------------------------------

    def authorized(self, header: str | None) -> bool:
        return header == f"Bearer {self.key}"

    def post(self, path: str, authorization: str | None, body: bytes) -> tuple[int, dict[str, Any]]:
        """The answer to one ``POST``: (status, JSON document)."""
        with self._lock:
            self.requests += 1
            if path != PATH:
                return 404, {"error": "not found"}
            if not self.authorized(authorization):
                return 401, {"error": "unauthorized"}
            try:
                doc = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                return 400, {"error": "the body is not JSON"}
            if not isinstance(doc, dict):
                return 400, {"error": "the body is not an object"}
            to, text = doc.get("to"), doc.get("text")
            if not isinstance(to, str) or not NUMBER.fullmatch(to):
                return 400, {"error": "to: 10-11 digits"}
            if not isinstance(text, str) or not 1 <= len(text) <= MAX_TEXT:
                return 400, {"error": f"text: 1-{MAX_TEXT} characters"}
            if not MOBILE.fullmatch(to):
                return 422, {"error": "to: not a mobile number"}
            reference = doc.get("reference") if isinstance(doc.get("reference"), str) else None
            if reference is not None and reference in self._by_reference:
                return 202, {"id": self._by_reference[reference], "status": "accepted"}
            if self.refused < self.fail_first:
                self.refused += 1
                return 503, {"error": "try again later"}
            sender = doc.get("sender") if isinstance(doc.get("sender"), str) else None
            message = Message(
                id=f"sim-{len(self.messages) + 1:06d}",
                to=to,
                text=text,
                sender=sender,
                reference=reference,
                received_at=datetime.now(UTC).isoformat(timespec="seconds"),
            )
            self.messages.append(message)
            if reference is not None:
                self._by_reference[reference] = message.id
            if self.record is not None:
                with self.record.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(asdict(message), ensure_ascii=False) + "\n")
            return 202, {"id": message.id, "status": "accepted"}


def read_record(path: Path) -> Iterator[Message]:
    """The messages a command's ``--record`` file holds."""
    if not path.exists():
        return
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            yield Message(**json.loads(line))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m simulators.sms", description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--key", required=True, help="the API key the gateway must send")
    p.add_argument("--record", type=Path, default=None, help="append each message (JSON lines)")
    p.add_argument("--fail-first", type=int, default=0, help="answer 503 to this many first")
    args = p.parse_args(argv)
    provider = SmsProvider(args.key, args.fail_first, args.record).start(args.host, args.port)
    print(json.dumps({"url": provider.url}), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    provider.stop()
    print(json.dumps({"messages": len(provider.messages)}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
