"""Fuzz check of the TOML configuration (see tests/fuzz/registry.py): a file read by
``gateway.config.load_config`` as the daemon and gateway-admin read it; only ``ConfigError``
may come out."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from gateway.config import load_config
from gateway.errors import ConfigError

#: One file per process, rewritten for each input. libFuzzer ends a run with _exit (no atexit),
#: so each process first removes the files of processes that are gone.
_DIR = Path(tempfile.gettempdir()) / "gateway-fuzz-config"
_DIR.mkdir(exist_ok=True)


def _gone(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return True
    except PermissionError:  # another user's process
        return False
    return False


for _old in _DIR.glob("*.toml"):
    if _gone(_old.stem):
        _old.unlink(missing_ok=True)
_FILE = _DIR / f"{os.getpid()}.toml"


def config(data: bytes) -> None:
    _FILE.write_bytes(data)
    try:
        load_config(_FILE)
    except ConfigError as e:
        str(e)
