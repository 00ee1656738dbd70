"""Personal data in the decision log: masked for every reader, sealed (encrypted) for replay.

Input: a record, the names of its `pii` fields and the decision's id. Output: the record with those values
masked (all but the last 4 characters replaced by `*`), and a sealed token holding the plain values, which
`unseal` opens again with the same key and decision id.

The token is `v2.` followed by URL-safe base64 of a random 12-byte nonce and the AES-256-GCM ciphertext of the
values' JSON, with the decision id as associated data: a token copied onto another decision's row does not
open. The AES key is derived (HKDF-SHA256) from the configured pii key, 32 bytes in URL-safe base64
(`pii_key` / DECIDE_PII_KEY, else a key file the server creates once with mode 0600 in its data directory:
fine for one machine; production injects the key). Tokens without the prefix are Fernet tokens under the
same key, as servers before v2 sealed them; they still open, so old decisions replay.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from compiler.masking import mask, masked  # noqa: F401 — re-exported: the server's views mask with these
from decision_server.config import ConfigError, ServerConfig
from decision_server.random_bytes import random_bytes

TOKEN_PREFIX = "v2."
_NONCE_BYTES = 12
_HKDF_INFO = b"decide decision-log pii seal v2"


def new_key() -> str:
    """A fresh pii key: 32 random bytes, URL-safe base64."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def parse_key(text: str | bytes) -> bytes:
    """The 32 bytes of a pii key, else a ConfigError."""
    try:
        raw = base64.urlsafe_b64decode(text.encode() if isinstance(text, str) else text)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ConfigError("the pii key is not 32 bytes in URL-safe base64 (decide serve --demo makes one)")
    return raw


def load_key(config: ServerConfig) -> bytes:
    """The pii key from configuration or the data directory's key file (created on first use)."""
    text = config.pii_key
    if text is None:
        path = Path(config.data_dir) / "pii.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another worker made it first
            else:
                with os.fdopen(descriptor, "wb") as handle:
                    handle.write(new_key().encode())
        text = path.read_text().strip()
    return parse_key(text)


def derived_aes_key(key: bytes) -> bytes:
    """The AES-256-GCM key of v2 tokens (HKDF-SHA256 of the pii key, no salt, a fixed info string)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(key)


class Sealer:
    """Seals and unseals the personal values of decisions; one per process, thread-safe."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(derived_aes_key(key))
        self._fernet = Fernet(base64.urlsafe_b64encode(key))  # opens tokens sealed before v2

    def seal(self, record: Mapping[str, Any], personal: Collection[str], decision_id: str) -> str | None:
        values = {name: record[name] for name in personal if record.get(name) is not None}
        if not values:
            return None
        nonce = random_bytes.take(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, orjson.dumps(values), decision_id.encode())
        return TOKEN_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()

    def unseal(self, token: str | None, decision_id: str) -> dict[str, Any]:
        if not token:
            return {}
        try:
            if token.startswith(TOKEN_PREFIX):
                raw = base64.urlsafe_b64decode(token[len(TOKEN_PREFIX) :])
                plain = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], decision_id.encode())
            else:
                plain = self._fernet.decrypt(token.encode())
        except (InvalidTag, InvalidToken, binascii.Error, ValueError):
            raise ConfigError(
                "the personal data of this decision was sealed with another key (or its sealed value was altered): "
                "configure the key it was logged with (pii_key) to replay it"
            ) from None
        return orjson.loads(plain)
