"""The HTTP SMS provider (gateway.protocols.sms_client) against the simulated provider
(simulators.sms) on 127.0.0.1: what it sends, what each answer means, and where it refuses to
connect; and the ``[sms]`` section that configures it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_twisted

from gateway.billing.sms import SmsResult
from gateway.config import load_config
from gateway.config.notices import SmsConfig
from gateway.errors import ConfigError
from gateway.protocols.sms_client import HttpSmsProvider, provider_id, result_of
from gateway.webhooks.attempts import REFUSED_ADDRESS
from simulators.sms import SmsProvider
from tests.conftest import config_text, logged
from tests.protocols.test_webhook_client import FakeResolver

KEY = "k-0123456789abcdef"


@pytest.fixture
def provider() -> Iterator[SmsProvider]:
    p = SmsProvider(KEY).start()
    yield p
    p.stop()


def client(url: str, *, allowed: bool = True, key: str = KEY, **kw: object) -> HttpSmsProvider:
    from ipaddress import ip_network

    from twisted.internet import reactor  # noqa: TID251 - a real client for a real server

    config = SmsConfig(
        endpoint=url,
        api_key=key,
        sender="GATEWAY",
        timeout=2.0,
        poll_interval=1.0,
        max_attempts=3,
        retry_base=1.0,
        retry_cap=2.0,
        allowed_networks=(ip_network("127.0.0.0/8"),) if allowed else (),
    )
    return HttpSmsProvider(reactor, config, **kw)  # type: ignore[arg-type]


@pytest_twisted.ensureDeferred
async def test_a_message_taken_is_sent_once_with_the_key_and_its_reference(
    provider: SmsProvider,
) -> None:
    sms = client(provider.url)
    try:
        with logged() as lines:
            first = await sms.send(
                "09012345678", "お支払いはこちら https://x/p/T", "GW", "notice-7"
            )
            again = await sms.send(
                "09012345678", "お支払いはこちら https://x/p/T", "GW", "notice-7"
            )
    finally:
        await sms.close()
    assert first == SmsResult(True, "sim-000001") == again  # the reference deduplicates
    (message,) = provider.messages
    assert (message.to, message.text, message.sender, message.reference) == (
        "09012345678",
        "お支払いはこちら https://x/p/T",
        "GW",
        "notice-7",
    )
    assert not any(KEY in line or "09012345678" in line for line in lines)


@pytest_twisted.ensureDeferred
async def test_an_outage_is_not_now_and_a_refusal_is_for_good(provider: SmsProvider) -> None:
    provider.fail_first = 1
    sms = client(provider.url)
    wrong = client(provider.url, key="wrong")
    try:
        busy = await sms.send("09012345678", "a", None, "n-1")
        refused = await wrong.send("09012345678", "a", None, "n-2")
        landline = await sms.send("0312345678", "a", None, "n-3")
    finally:
        await sms.close()
        await wrong.close()
    assert busy == SmsResult(False, error="provider not available (HTTP 503)")
    assert refused == SmsResult(False, permanent=True, error="refused by the provider (HTTP 401)")
    assert landline == SmsResult(False, permanent=True, error="refused by the provider (HTTP 422)")
    assert provider.messages == []


def test_the_answers_the_provider_may_give() -> None:
    assert result_of(202, b'{"id": "m-1"}') == SmsResult(True, "m-1")
    assert result_of(200, b'{"message_id": 42}') == SmsResult(True, "42")
    assert result_of(201, b"OK") == SmsResult(True, None)
    assert result_of(429, b"") == SmsResult(False, error="provider not available (HTTP 429)")
    assert result_of(400, b"").permanent and not result_of(500, b"").permanent
    assert provider_id(b'{"id": true}') is None and provider_id(b"[1]") is None


def test_an_endpoint_on_a_private_address_is_refused_before_anything_listens() -> None:
    with pytest.raises(ConfigError, match=r"sms\.endpoint: is on an address that is not public"):
        client("http://127.0.0.1:9/v1/messages", allowed=False)
    with pytest.raises(ConfigError, match=r"sms\.endpoint"):
        client("https://169.254.169.254/latest/meta-data", allowed=False)


@pytest_twisted.ensureDeferred
async def test_a_name_that_resolves_to_a_private_address_reaches_nothing(
    provider: SmsProvider,
) -> None:
    # The operator's endpoint names a host whose DNS answers with the loopback (a rebinding,
    # or a mistake): refused at the attempt, nothing connected to.
    url = provider.url.replace("127.0.0.1", "sms.example.jp")
    resolver = FakeResolver({"sms.example.jp": [["127.0.0.1"]]})
    sms = client(url, allowed=False, resolver=resolver)
    try:
        result = await sms.send("09012345678", "a", None, "n-1")
    finally:
        await sms.close()
    assert result == SmsResult(False, error=REFUSED_ADDRESS)
    assert provider.requests == 0


@pytest_twisted.ensureDeferred
async def test_a_provider_that_never_answers_is_cut_off() -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    port = silent.getsockname()[1]
    sms = client(f"http://127.0.0.1:{port}/v1/messages")
    sms.config = SmsConfig(**{**vars(sms.config), "timeout": 0.3})  # type: ignore[arg-type]
    try:
        result = await sms.send("09012345678", "a", None, "n-1")
    finally:
        await sms.close()
        silent.close()
    assert result == SmsResult(False, error="timeout: no complete response within 0.3s")


def _config(tmp_path: Path, sms: str) -> str:
    path = tmp_path / "gateway.toml"
    path.write_text(config_text("sqlite:///x.db", extra=f"[sms]\n{sms}"), encoding="utf-8")
    try:
        load_config(path)
    except ConfigError as e:
        return str(e)
    return "ok"


@pytest.mark.parametrize(
    ("sms", "error"),
    [
        ('endpoint = "https://sms.example.jp/v1/messages"\napi_key = "k"', "ok"),
        ('endpoint = "http://sms.example.jp/v1/messages"\napi_key = "k"', "sms.endpoint"),
        ('endpoint = "https://u:p@sms.example.jp/v1"\napi_key = "k"', "must not hold credentials"),
        ('endpoint = "ftp://sms.example.jp/"\napi_key = "k"', "must be an https:// URL"),
        ('endpoint = "https://sms.example.jp/"', "sms.api_key: is required"),
        ('endpoint = "https://sms.example.jp/"\napi_key = "k"\nsender = "送信者"', "sms.sender"),
        ('endpoint = "https://sms.example.jp/"\napi_key = "k"\nretry_cap = 1', "sms.retry_cap"),
        (
            'endpoint = "https://sms.example.jp/"\napi_key = "k"\nallowed_networks = ["x"]',
            "sms.allowed_networks[0]",
        ),
    ],
)
def test_the_sms_section(tmp_path: Path, sms: str, error: str) -> None:
    assert error in _config(tmp_path, sms)


def test_the_key_may_come_from_the_environment_and_is_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_SMS_API_KEY", "from-env-secret")
    path = tmp_path / "gateway.toml"
    text = config_text("sqlite:///x.db", extra='[sms]\nendpoint = "https://sms.example.jp/m"\n')
    path.write_text(text, encoding="utf-8")
    config = load_config(path)
    assert config.sms is not None and config.sms.api_key == "from-env-secret"
    assert "from-env-secret" not in repr(config) and "sms.example.jp" not in repr(config.sms)
