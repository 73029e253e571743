"""Test helpers around gateway.app.process: the real daemon with a test configuration."""

from __future__ import annotations

import subprocess
from pathlib import Path

from gateway.app.process import BIN, DaemonProcess, free_port, http
from gateway.app.process import admin as _admin
from tests.conftest import config_text

__all__ = ["BIN", "Daemon", "admin_cli", "http", "start_daemon", "write_config"]

Daemon = DaemonProcess


def admin_cli(config: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = _admin(config, *args, check=False)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def write_config(
    tmp_path: Path,
    database_url: str,
    *,
    migrate_on_start: bool = False,
    extra: str = "",
    api: str | None = None,
    api_extra: str = "",
) -> tuple[Path, int, int]:
    api_port, metrics_port = free_port(), free_port()
    text = config_text(
        database_url,
        api=api or f"tcp:{api_port}:interface=127.0.0.1",
        metrics=f"tcp:{metrics_port}:interface=127.0.0.1",
        public_url=f"http://127.0.0.1:{api_port}",
        extra=extra,
    )
    if api_extra:  # more [api] keys (e.g. the HTTP limits)
        text = text.replace("auth_cache_seconds = 0", "auth_cache_seconds = 0\n" + api_extra)
    if migrate_on_start:
        text = text.replace("pool_size = 4", "pool_size = 4\nmigrate_on_start = true")
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return path, api_port, metrics_port


def start_daemon(config: Path, api_port: int, metrics_port: int) -> DaemonProcess:
    return DaemonProcess.start(config, api_port, metrics_port)
