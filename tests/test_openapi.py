"""The OpenAPI document matches what the running daemon does (schemathesis, every check)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.daemon import BIN, admin_cli, start_daemon, write_config

pytestmark = pytest.mark.e2e

NO_LIMITS = """
requests_per_second = 1000000
request_burst = 100000
auth_failures_per_second = 1000000
auth_failure_burst = 100000
"""


def test_schemathesis_finds_no_mismatch(tmp_path: Path, database_url: str) -> None:
    # schemathesis sends thousands of requests with one key, and many with wrong keys: the
    # rate limits (tests/test_http_limits.py) would answer most of them 429.
    config, api_port, metrics_port = write_config(tmp_path, database_url, api_extra=NO_LIMITS)
    admin_cli(config, "migrate")
    admin_cli(config, "biller", "create", "--id", "st", "--name", "Schema", "--kana", "ｽｷｰﾏ")
    key = json.loads(admin_cli(config, "key", "create", "--biller", "st").stdout)["key"]
    daemon = start_daemon(config, api_port, metrics_port)
    try:
        daemon.wait()
        run = subprocess.run(
            [
                str(BIN / "schemathesis"),
                "--config-file",
                str(Path(__file__).with_name("schemathesis.toml")),
                "run",
                f"{daemon.api}/v1/openapi.json",
                "--checks",
                "all",
                # DELETE /v1/webhook-endpoints/{id} disables an endpoint and keeps its delivery
                # log readable (docs/webhooks.md): by design, not a use after free.
                "--exclude-checks",
                "use_after_free",
                "-H",
                f"Authorization: Bearer {key}",
                "--max-examples",
                "40",
                "--seed",
                "20261123",
                "--request-timeout",
                "10",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
        )
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
        assert "No issues found" in run.stdout or " passed" in run.stdout, run.stdout[-3000:]
    finally:
        assert daemon.stop() == 0
