"""Secrets at rest: what a copy of the database alone must not reveal.

One key (``[secrets] key`` or the ``GATEWAY_SECRET_KEY`` environment variable: 32 random bytes in
base64) gives, by HMAC-SHA256 with a fixed label each, three independent keys:

- the AES-256-GCM key that encrypts webhook secrets in ``webhook_endpoints.secret``
  (``v1:`` + base64url of nonce + ciphertext; the endpoint id is the associated data, so a
  secret copied onto another endpoint's row does not decrypt). A value without the prefix is a
  secret stored before encryption: it is read as it is until it is re-encrypted (migration 0009
  leaves them for the daemon, which has the key: :func:`encrypt_stored_secrets`).
- the HMAC key of page tokens: a bill's token is derived from its biller and bill number
  (:meth:`SecretBox.page_token`), so the page URL can be shown again at any time while the
  database holds only the token's SHA-256 (:func:`token_hash`), as it does for API keys.
- the AES-256-GCM key of account data at rest (:meth:`SecretBox.seal`, :meth:`SecretBox.unseal`):
  a biller's payout account number and holder name (``payout_accounts``), ``v1:`` + base64url of
  nonce + ciphertext, with the row's identity as the associated data.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.errors import ConfigError

ENV = "GATEWAY_SECRET_KEY"
_PREFIX = "v1:"
_WHSEC = "whsec_"


def parse_key(value: str, path: str) -> bytes:
    """The 32-byte key from its base64 text; :class:`ConfigError` naming ``path`` otherwise."""
    try:
        key = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(path, "is not base64 (make one: openssl rand -base64 32)") from None
    if len(key) != 32:
        raise ConfigError(path, f"must be 32 bytes in base64, not {len(key)} bytes")
    return key


def key_from_environment() -> bytes | None:
    value = os.environ.get(ENV)
    return parse_key(value, ENV) if value else None


def token_hash(token: str) -> str:
    """What the database keeps of a page token: its SHA-256 in hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(hmac.digest(key, b"gateway webhook secrets v1", "sha256"))
        self._pages = hmac.digest(key, b"gateway page tokens v1", "sha256")
        self._accounts = AESGCM(hmac.digest(key, b"gateway account data v1", "sha256"))

    def page_token(self, biller_id: str, bill_no: str) -> str:
        """The bill's page token: 192 bits, 32 URL-safe characters, the same every time."""
        mac = hmac.digest(self._pages, f"{biller_id}\n{bill_no}".encode(), "sha256")
        return base64.urlsafe_b64encode(mac[:24]).decode("ascii")

    def stored_page_token(self, biller_id: str, bill_no: str) -> str:
        """What ``bills.page_token`` keeps of the bill's page token: its SHA-256."""
        return token_hash(self.page_token(biller_id, bill_no))

    def encrypt(self, secret: str, context: str) -> str:
        """``v1:`` + unpadded base64url of nonce + ciphertext: a ``whsec_`` secret of 43
        characters takes 99 (the column holds 100), its prefix being one flag byte."""
        if secret.startswith(_WHSEC):
            plain = b"\x01" + secret[len(_WHSEC) :].encode("utf-8")
        else:
            plain = b"\x00" + secret.encode("utf-8")
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plain, context.encode("utf-8"))
        return _PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii").rstrip("=")

    def decrypt(self, stored: str, context: str) -> str:
        """The secret; a value stored before encryption (no prefix) as it is. ValueError when
        the value does not decrypt with this key (another key, or a tampered row)."""
        if not stored.startswith(_PREFIX):
            return stored
        text = stored[len(_PREFIX) :]
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        try:
            plain = self._aead.decrypt(raw[:12], raw[12:], context.encode("utf-8"))
        except InvalidTag:
            raise ValueError("a stored secret does not decrypt with [secrets] key") from None
        rest = plain[1:].decode("utf-8")
        return _WHSEC + rest if plain[:1] == b"\x01" else rest

    def seal(self, value: str, context: str) -> str:
        """Account data as stored: ``v1:`` + unpadded base64url of nonce + ciphertext, bound to
        ``context`` (the row it belongs to). A 7-digit number takes 50 characters, a holder
        name of 30 half-width characters (90 bytes of UTF-8) 161."""
        nonce = os.urandom(12)
        sealed = self._accounts.encrypt(nonce, value.encode("utf-8"), context.encode("utf-8"))
        return _PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii").rstrip("=")

    def unseal(self, stored: str, context: str) -> str:
        """What :meth:`seal` sealed; ValueError when it does not open with this key and
        context (another key, a value copied from another row, a tampered row)."""
        if not stored.startswith(_PREFIX):
            raise ValueError("stored account data is not sealed")
        text = stored[len(_PREFIX) :]
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            plain = self._accounts.decrypt(raw[:12], raw[12:], context.encode("utf-8"))
        except (InvalidTag, binascii.Error, ValueError):
            raise ValueError("stored account data does not decrypt with [secrets] key") from None
        return plain.decode("utf-8")


def is_encrypted(stored: str) -> bool:
    return stored.startswith(_PREFIX)
