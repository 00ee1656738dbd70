"""Sealing personal values for the decision log: a v2 token opens only with its key and its decision id,
tampering is detected, and tokens sealed with Fernet before v2 still open (old decisions replay)."""

from __future__ import annotations

import base64

import orjson
import pytest
from cryptography.fernet import Fernet

from decision_server.config import ConfigError
from decision_server.sealing import Sealer, new_key, parse_key

KEY = new_key()
OTHER_KEY = new_key()
RECORD = {"national_id": "ZQ7731905544", "age": 41, "phone": None}
PERSONAL = ("national_id", "phone")
DECISION = "0190f3a2-7b1c-7d3e-8f4a-1b2c3d4e5f60"


def sealer(key: str = KEY) -> Sealer:
    return Sealer(parse_key(key))


def test_a_token_opens_with_its_key_and_decision() -> None:
    token = sealer().seal(RECORD, PERSONAL, DECISION)
    assert token is not None and token.startswith("v2.")
    assert "ZQ7731905544" not in token and "ZQ7731905544" not in base64.urlsafe_b64decode(token[3:]).decode("latin-1")
    assert sealer().unseal(token, DECISION) == {"national_id": "ZQ7731905544"}  # None values are not sealed


def test_each_seal_has_its_own_nonce() -> None:
    assert sealer().seal(RECORD, PERSONAL, DECISION) != sealer().seal(RECORD, PERSONAL, DECISION)


def test_nothing_personal_seals_to_nothing() -> None:
    assert sealer().seal({"age": 41, "phone": None}, PERSONAL, DECISION) is None
    assert sealer().unseal(None, DECISION) == {}


def _flipped(token: str) -> str:
    raw = bytearray(base64.urlsafe_b64decode(token[3:]))
    raw[-1] ^= 1
    return "v2." + base64.urlsafe_b64encode(bytes(raw)).decode()


@pytest.mark.parametrize(
    "how",
    ["another decision", "another key", "one bit changed", "cut short", "not base64"],
)
def test_a_token_that_does_not_belong_does_not_open(how: str) -> None:
    token = sealer().seal(RECORD, PERSONAL, DECISION)
    assert token is not None
    opener, decision = sealer(), DECISION
    if how == "another decision":
        decision = "0190f3a2-7b1c-7d3e-8f4a-000000000000"
    elif how == "another key":
        opener = sealer(OTHER_KEY)
    elif how == "one bit changed":
        token = _flipped(token)
    elif how == "cut short":
        token = token[:10]
    else:
        token = "v2.*not base64*"
    with pytest.raises(ConfigError, match="sealed with another key"):
        opener.unseal(token, decision)


def test_a_token_sealed_with_fernet_before_v2_still_opens() -> None:
    old = Fernet(KEY.encode()).encrypt(orjson.dumps({"national_id": "AB123456"})).decode()
    assert sealer().unseal(old, DECISION) == {"national_id": "AB123456"}
    with pytest.raises(ConfigError):
        sealer(OTHER_KEY).unseal(old, DECISION)


@pytest.mark.parametrize("text", ["", "not-a-key", base64.urlsafe_b64encode(b"x" * 31).decode(), "é" * 44])
def test_a_key_that_is_not_32_bytes_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="32 bytes"):
        parse_key(text)
