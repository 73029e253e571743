"""Webhook signatures: how the gateway signs a delivery and how a receiver checks it.

Every delivery carries ``Gateway-Signature: t=<unix seconds>,v1=<hex>`` where the hex is the
HMAC-SHA256, keyed with the endpoint's secret (its UTF-8 bytes, ``whsec_`` prefix included), of
``"<t>." + raw body``. A receiver recomputes it over the body bytes exactly as received (before
any JSON parsing), compares in constant time and refuses a ``t`` outside its tolerance, so that
a captured request cannot be replayed later.

This module uses only the standard library: a receiver may copy it as it is.

    from gateway.webhooks.signing import SignatureError, verify_signature

    try:
        verify_signature(secret, request.headers["Gateway-Signature"], raw_body, now=time.time())
    except SignatureError as e:
        return 400, str(e)
"""

from __future__ import annotations

import hashlib
import hmac
import re

__all__ = [
    "MalformedSignature",
    "SignatureError",
    "StaleSignature",
    "WrongSignature",
    "sign",
    "signature_header",
    "verify_signature",
]

TOLERANCE = 300  # seconds: the spec's "refuse a t older than 5 minutes"
_HEX64 = re.compile(r"[0-9a-f]{64}")


class SignatureError(ValueError):
    """The ``Gateway-Signature`` header does not prove that the gateway sent this body."""


class MalformedSignature(SignatureError):
    """The header is not ``t=<unix seconds>,v1=<64 hex digits>``."""


class WrongSignature(SignatureError):
    """No ``v1`` in the header is the HMAC of this body with this secret."""


class StaleSignature(SignatureError):
    """``t`` is further from now than the tolerance (a replay, or a clock far off)."""


def _key(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def sign(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``"<timestamp>." + body`` keyed with ``secret``."""
    message = str(int(timestamp)).encode("ascii") + b"." + body
    return hmac.new(_key(secret), message, hashlib.sha256).hexdigest()


def signature_header(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """The ``Gateway-Signature`` value the gateway sends."""
    return f"t={int(timestamp)},v1={sign(secret, timestamp, body)}"


def _parse(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            raise MalformedSignature(f"bad Gateway-Signature element {part.strip()[:20]!r}")
        if name == "t":
            if timestamp is not None or not value.isascii() or not value.isdigit():
                raise MalformedSignature("Gateway-Signature needs one t=<unix seconds>")
            timestamp = int(value)
        elif name == "v1":
            if not _HEX64.fullmatch(value):
                raise MalformedSignature("a v1 signature must be 64 lower-case hex digits")
            signatures.append(value)
        # other schemes (v0, a future v2) are ignored, as a receiver should
    if timestamp is None:
        raise MalformedSignature("Gateway-Signature has no t=<unix seconds>")
    if not signatures:
        raise MalformedSignature("Gateway-Signature has no v1 signature")
    return timestamp, signatures


def verify_signature(
    secret: str | bytes,
    header: str,
    body: bytes,
    *,
    now: float,
    tolerance: int = TOLERANCE,
) -> None:
    """Return if ``header`` signs ``body`` with ``secret`` within ``tolerance`` seconds of
    ``now`` (unix seconds); raise a :class:`SignatureError` subclass saying why not.

    Several ``v1`` values are accepted (any may match), so a sender can sign with an old and a
    new secret during a rotation.
    """
    if not isinstance(header, str) or not header:
        raise MalformedSignature("no Gateway-Signature header")
    timestamp, signatures = _parse(header)
    expected = sign(secret, timestamp, body)
    # Compare against every candidate (no early exit) so timing says nothing about which.
    matched = False
    for candidate in signatures:
        matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise WrongSignature("the signature does not match the body and the secret")
    age = now - timestamp
    if age > tolerance:
        raise StaleSignature(f"the signature is {age:.0f}s old (tolerance {tolerance}s)")
    if -age > tolerance:
        raise StaleSignature(f"the signature is {-age:.0f}s in the future (tolerance {tolerance}s)")
