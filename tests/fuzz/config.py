"""Fuzz check of the TOML configuration (see tests/fuzz/registry.py): a file read by
``gateway.config.load_config`` as the daemon and gateway-admin read it; only ``ConfigError``
may come out."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from gateway.config import load_config
from gateway.errors import ConfigError

_CONFIG_DIR = Path(tempfile.mkdtemp(prefix="gateway-fuzz-config-"))
_CONFIG_FILE = _CONFIG_DIR / "gateway.toml"
atexit.register(shutil.rmtree, _CONFIG_DIR, ignore_errors=True)


def config(data: bytes) -> None:
    _CONFIG_FILE.write_bytes(data)
    try:
        load_config(_CONFIG_FILE)
    except ConfigError as e:
        str(e)
