"""Console login attempts are limited per client address (``[console] login_burst``,
``login_attempts_per_minute``), whatever the login: 429 with Retry-After, nothing checked."""

from __future__ import annotations

import pytest
import pytest_twisted

from tests.conftest import Running, config_text
from tests.protocols.test_console_http import Client


@pytest.fixture
def gateway_config(migrated_url: str) -> str:
    """Login attempts from one address: 3 at once, then one a minute."""
    return config_text(
        migrated_url, extra="[console]\nlogin_burst = 3\nlogin_attempts_per_minute = 1\n"
    )


@pytest_twisted.ensureDeferred
async def test_login_attempts_are_limited_per_address(gateway: Running) -> None:
    client = Client(gateway)
    for n in range(3):
        assert (await client.login(f"nobody{n}", "whatever-it-is"))[0] == 401
    status, body, headers = await client.login("nobody", "whatever-it-is")
    assert status == 429 and "試行が多すぎます" in body
    assert int(headers.getRawHeaders("retry-after")[0]) >= 1
