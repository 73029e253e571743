"""The daemon and ``gateway-admin`` as child processes: for the demo, tests and benchmarks.

Nothing here runs inside the daemon. It starts the real programs exactly as an operator would
(``twistd -n gateway -c FILE``, ``gateway-admin -c FILE ...``) from the same environment.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def admin(config: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``gateway-admin -c CONFIG ARGS``; with ``check``, a failure raises with its reason."""
    proc = subprocess.run(
        [str(BIN / "gateway-admin"), "-c", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and proc.returncode != 0:
        raise RuntimeError(f"gateway-admin {' '.join(args)}: {proc.stderr.strip()}")
    return proc


def admin_json(config: Path, *args: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(admin(config, *args).stdout)
    return result


def http(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
) -> tuple[int, Any, dict[str, str]]:
    """(status, JSON body or text, headers) of one request; HTTP errors are answers too."""
    data = json.dumps(body, ensure_ascii=False).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            raw, code, hdrs = resp.read(), resp.status, dict(resp.headers)
    except urllib.error.HTTPError as e:
        raw, code, hdrs = e.read(), e.code, dict(e.headers)
    ctype = hdrs.get("Content-Type", "")
    return code, json.loads(raw) if "json" in ctype else raw.decode(), hdrs


@dataclass
class DaemonProcess:
    """``twistd -n gateway -c CONFIG``, its output in ``log``."""

    config: Path
    log: Path
    api: str
    metrics: str
    proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(
        cls,
        config: Path,
        api_port: int,
        metrics_port: int,
        log: Path | None = None,
        twistd_args: tuple[str, ...] = (),
    ) -> DaemonProcess:
        log = log or config.parent / "twistd.log"
        daemon = cls(
            config, log, f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{metrics_port}"
        )
        with log.open("wb") as out:
            daemon.proc = subprocess.Popen(
                [
                    str(BIN / "twistd"),
                    *twistd_args,
                    "-n",
                    "--pidfile=",
                    "gateway",
                    "-c",
                    str(config),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=config.parent,
            )
        return daemon

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait(self, path: str = "/healthz", timeout: float = 30) -> None:
        """Wait until ``metrics + path`` answers 200 (``/readyz``: the store answers too)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if http("GET", self.metrics + path, timeout=1)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"daemon: {path} not 200 after {timeout}s:\n{self.output()}")

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM and wait. After a clean shutdown twistd re-raises the signal, so its exit
        status is -SIGTERM; that is reported as 0, anything else as it is."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError(f"daemon ignored SIGTERM:\n{self.output()}") from None
            if self.proc.returncode == -signal.SIGTERM and "Server Shut Down" in self.output():
                return 0
        return self.proc.returncode
