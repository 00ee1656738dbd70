"""The server's configuration layers (defaults, DECIDE_SERVER_* variables, then the caller's settings) and its
refusals: every bad setting is a ConfigError naming the setting, never a failure on the first request."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from decision_server.config import ConfigError, ServerConfig, load_config


def test_defaults_then_environment_then_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_config() == ServerConfig()
    monkeypatch.setenv("DECIDE_SERVER_MAX_BATCH", "50")
    monkeypatch.setenv("DECIDE_SERVER_PLUGINS", "no")
    monkeypatch.setenv("DECIDE_DATABASE_URL", "sqlite:///elsewhere.db")
    config = load_config({"max_batch": 7})
    assert (config.max_batch, config.plugins, config.database_url) == (7, False, "sqlite:///elsewhere.db")
    assert load_config().max_batch == 50


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_batchh": 1}, "unknown setting 'max_batchh'"),
        ({"max_batch": "many"}, "setting max_batch expects int, not 'many'"),
        ({"refresh_seconds": 0}, "setting refresh_seconds must be positive, not 0"),
        ({"spool_fsync": "sometimes"}, "setting spool_fsync is 'interval' or 'always', not 'sometimes'"),
        ({"pii_key": "not-a-key"}, "setting pii_key is not a key of 32 bytes in URL-safe base64"),
        ({"pii_key": "c2hvcnQ="}, "setting pii_key is not a key of 32 bytes in URL-safe base64"),
    ],
)
def test_bad_settings_are_named(settings: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(settings)
    assert message in str(caught.value)


def test_a_real_key_is_accepted() -> None:
    key = Fernet.generate_key().decode()
    assert load_config({"pii_key": key}).pii_key == key
