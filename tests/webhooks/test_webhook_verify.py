"""Webhook signatures (gateway/webhooks/signing.py) and the retry schedule
(gateway.webhooks.api.backoff).

The expected signatures are computed here with ``hmac`` directly, not with the module's own
``sign``, so a mistake in the module cannot agree with itself.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.webhooks.api import backoff
from gateway.webhooks.signing import (
    MalformedSignature,
    SignatureError,
    StaleSignature,
    WrongSignature,
    sign,
    signature_header,
    verify_signature,
)

SECRET = "whsec_4mW2Lq1t0p6V3b8y7Xk9Zr5sNc2Hd0Fg1Jm3Qa7Ue4I"
T = 1_795_000_000  # 2026-11-18T...Z
BODY = (
    '{"id":"evt_0123456789abcdef01234567","seq":7,"type":"bill.created","data":{"x":"山田"}}'
).encode()
DOCS = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"


def expected_hex(secret: str, t: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


# --- signing ------------------------------------------------------------------------------------


def test_the_header_is_t_and_the_hmac_of_t_dot_body() -> None:
    assert signature_header(SECRET, T, BODY) == f"t={T},v1={expected_hex(SECRET, T, BODY)}"
    assert sign(SECRET.encode(), T, BODY) == expected_hex(SECRET, T, BODY)


def test_a_known_vector() -> None:
    # RFC 4231-style fixed input: the same bytes must always give the same signature.
    header = signature_header("whsec_test", 1700000000, b"{}")
    digest = hmac.new(b"whsec_test", b"1700000000.{}", hashlib.sha256).hexdigest()
    assert header == "t=1700000000,v1=" + digest


# --- verifying ----------------------------------------------------------------------------------


def test_a_good_signature_verifies_with_str_and_bytes_secrets() -> None:
    header = f"t={T},v1={expected_hex(SECRET, T, BODY)}"
    verify_signature(SECRET, header, BODY, now=T + 10)
    verify_signature(SECRET.encode(), header, BODY, now=T + 10)
    verify_signature(SECRET, header, BODY, now=T + 300)  # the edge of the tolerance
    verify_signature(SECRET, f" t={T} , v1={expected_hex(SECRET, T, BODY)} ", BODY, now=T)


@pytest.mark.parametrize(
    ("secret", "body"),
    [
        (SECRET + "x", BODY),  # another endpoint's secret
        (SECRET, BODY + b" "),  # one byte more
        (SECRET, BODY.replace(b'"seq":7', b'"seq":8')),  # one field changed
        (SECRET, b""),
    ],
)
def test_another_secret_or_body_is_a_wrong_signature(secret: str, body: bytes) -> None:
    header = signature_header(SECRET, T, BODY)
    with pytest.raises(WrongSignature):
        verify_signature(secret, header, body, now=T)


def test_a_changed_timestamp_is_a_wrong_signature() -> None:
    v1 = expected_hex(SECRET, T, BODY)
    with pytest.raises(WrongSignature):
        verify_signature(SECRET, f"t={T + 1},v1={v1}", BODY, now=T)


@pytest.mark.parametrize(
    ("now", "tolerance"), [(T + 301, 300), (T - 301, 300), (T + 61, 60), (T + 86_400, 300)]
)
def test_a_timestamp_outside_the_tolerance_is_stale(now: int, tolerance: int) -> None:
    header = signature_header(SECRET, T, BODY)
    with pytest.raises(StaleSignature):
        verify_signature(SECRET, header, BODY, now=now, tolerance=tolerance)


def test_any_v1_may_match_and_other_schemes_are_ignored() -> None:
    good = expected_hex(SECRET, T, BODY)
    other = expected_hex("whsec_old", T, BODY)
    verify_signature(SECRET, f"t={T},v1={other},v1={good}", BODY, now=T)
    verify_signature(SECRET, f"t={T},v0=whatever,v1={good}", BODY, now=T)
    with pytest.raises(WrongSignature):
        verify_signature(SECRET, f"t={T},v1={other}", BODY, now=T)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        f"v1={'0' * 64}",  # no t
        f"t={T}",  # no v1
        f"t=abc,v1={'0' * 64}",
        f"t=-5,v1={'0' * 64}",
        f"t={T},t={T},v1={'0' * 64}",
        f"t={T},v1={'0' * 63}",
        f"t={T},v1={'0' * 64}0",
        f"t={T},v1={'A' * 64}",
        f"t={T};v1={'0' * 64}",
    ],
)
def test_a_malformed_header_says_so(header: str) -> None:
    with pytest.raises(MalformedSignature):
        verify_signature(SECRET, header, BODY, now=T)


def test_every_error_is_a_signature_error_and_a_value_error() -> None:
    for cls in (MalformedSignature, WrongSignature, StaleSignature):
        assert issubclass(cls, SignatureError) and issubclass(cls, ValueError)


@given(st.text(max_size=200), st.binary(max_size=64))
def test_any_header_raises_nothing_but_signature_error(header: str, body: bytes) -> None:
    try:
        verify_signature(SECRET, header, body, now=T)
    except SignatureError:
        pass


def test_the_openssl_recipe_in_the_docs_gives_the_same_signature(tmp_path: Path) -> None:
    """docs/webhooks.md's shell recipe, run as written."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl")
    recipe = (
        "printf '%s.' \"$T\" | cat - body.json"
        ' | openssl dgst -sha256 -hmac "$SECRET" -hex | sed "s/^.* //"'
    )
    assert recipe in DOCS.read_text(encoding="utf-8")
    (tmp_path / "body.json").write_bytes(BODY)
    out = subprocess.run(
        ["sh", "-c", recipe],
        cwd=tmp_path,
        env={"T": str(T), "SECRET": SECRET, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == expected_hex(SECRET, T, BODY)


# --- the retry schedule -------------------------------------------------------------------------


@pytest.mark.parametrize(("base", "cap"), [(10.0, 3600.0), (0.05, 0.2), (1.0, 1.0)])
def test_backoff_is_full_jitter_under_the_exponential_ceiling(base: float, cap: float) -> None:
    rng = random.Random(20261123)
    for attempt in range(1, 40):
        ceiling = min(cap, base * 2 ** (attempt - 1))
        delays = [backoff(attempt, base, cap, rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        # full jitter: the whole range is used, not just its top
        assert min(delays) < 0.1 * ceiling and max(delays) > 0.9 * ceiling


def test_backoff_is_reproducible_with_a_seed_and_bounded_for_huge_attempts() -> None:
    first = [backoff(n, 10, 3600, random.Random(7)) for n in range(1, 20)]
    again = [backoff(n, 10, 3600, random.Random(7)) for n in range(1, 20)]
    assert first == again
    assert 0 <= backoff(10_000, 10, 3600, random.Random(1)) <= 3600


def test_three_days_of_defaults_is_about_a_hundred_attempts() -> None:
    """base 10 s, cap 1 h, 72 h: the schedule the defaults give (seeded)."""
    rng = random.Random(3)
    elapsed, attempts = 0.0, 1
    while True:
        elapsed += backoff(attempts, 10.0, 3600.0, rng)
        if elapsed > 72 * 3600:
            break
        attempts += 1
    # the ceiling reaches 1 h after 10 attempts; then ~30 min on average per attempt
    assert 120 <= attempts <= 170, attempts
