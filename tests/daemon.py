"""Run the real daemon (``twistd -n gateway``) and ``gateway-admin`` as subprocesses."""

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

from tests.conftest import config_text

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def admin_cli(config: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(BIN / "gateway-admin"), "-c", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def http(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
) -> tuple[int, Any, dict[str, str]]:
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
class Daemon:
    proc: subprocess.Popen[bytes]
    config: Path
    log: Path
    api: str
    metrics: str

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_healthy(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if http("GET", self.metrics + "/healthz", timeout=1)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"daemon not healthy after {timeout}s:\n{self.output()}")

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM and wait. After a clean shutdown twistd re-raises the signal, so the exit
        status is -SIGTERM; report that as 0 and anything else as it is."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"daemon ignored SIGTERM:\n{self.output()}") from None
            if self.proc.returncode == -signal.SIGTERM and "Server Shut Down" in self.output():
                return 0
        return self.proc.returncode


def write_config(
    tmp_path: Path,
    database_url: str,
    *,
    migrate_on_start: bool = False,
    extra: str = "",
    **over: str,
) -> tuple[Path, int, int]:
    api_port, metrics_port = free_port(), free_port()
    text = config_text(
        database_url,
        api=over.get("api", f"tcp:{api_port}:interface=127.0.0.1"),
        metrics=f"tcp:{metrics_port}:interface=127.0.0.1",
        public_url=f"http://127.0.0.1:{api_port}",
        extra=extra,
    )
    if migrate_on_start:
        text = text.replace("pool_size = 4", "pool_size = 4\nmigrate_on_start = true")
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return path, api_port, metrics_port


def start_daemon(config: Path, api_port: int, metrics_port: int) -> Daemon:
    log = config.parent / "twistd.log"
    proc = subprocess.Popen(
        [str(BIN / "twistd"), "-n", "--pidfile=", "gateway", "-c", str(config)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=config.parent,
    )
    return Daemon(
        proc, config, log, f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{metrics_port}"
    )
