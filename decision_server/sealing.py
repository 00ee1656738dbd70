"""Personal data in the decision log: masked for every reader, sealed (encrypted) for replay.

Input: a record and the names of its `pii` fields. Output: the record with those values masked (all but the
last 4 characters replaced by `*`), and a Fernet token holding the plain values; `unseal` reverses the token
with the same key. The key comes from configuration (`pii_key` / DECIDE_PII_KEY), else from a key file the
server creates once with mode 0600 in its data directory (fine for one machine; production injects the key).
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken

from decision_server.config import ConfigError, ServerConfig


def mask(value: Any) -> str:
    """All but the last 4 characters hidden: enough to recognise a value, never to recover it."""
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    visible = text[-4:] if len(text) > 4 else ""
    return "*" * max(len(text) - len(visible), 4) + visible


def masked(record: Mapping[str, Any], personal: Collection[str]) -> dict[str, Any]:
    return {name: mask(value) if name in personal and value is not None else value for name, value in record.items()}


def load_key(config: ServerConfig) -> Fernet:
    """The Fernet key from configuration or the data directory's key file (created on first use)."""
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
                    handle.write(Fernet.generate_key())
        text = path.read_text().strip()
    try:
        return Fernet(text.encode() if isinstance(text, str) else text)
    except (ValueError, TypeError):
        raise ConfigError("the pii key is not a Fernet key (32 bytes, URL-safe base64)") from None


class Sealer:
    def __init__(self, key: Fernet) -> None:
        self.key = key

    def seal(self, record: Mapping[str, Any], personal: Collection[str]) -> str | None:
        values = {name: record[name] for name in personal if record.get(name) is not None}
        return self.key.encrypt(orjson.dumps(values)).decode() if values else None

    def unseal(self, token: str | None) -> dict[str, Any]:
        if not token:
            return {}
        try:
            return orjson.loads(self.key.decrypt(token.encode()))
        except InvalidToken:
            raise ConfigError(
                "the personal data of this decision was sealed with another key: configure the key it was logged "
                "with (pii_key) to replay it"
            ) from None
