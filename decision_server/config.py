"""The decision server's configuration: defaults, then `DECIDE_*` environment variables, then what the caller
passes (a mapping or a `ServerConfig`), in Flask's layered style.

Input: an optional mapping of overrides. Output: a frozen `ServerConfig`, every value checked (a bad value is a
`ConfigError` naming the setting and what it expects).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from dsl.errors import DecideError


class ConfigError(DecideError):
    """A setting with a value the server cannot use."""


@dataclass(frozen=True)
class ServerConfig:
    database_url: str | None = None  # None: DECIDE_DATABASE_URL, else sqlite:///decide.db
    data_dir: str = "decide-data"  # the spool and, unless a key is given, the key that seals personal data
    pii_key: str | None = None  # 32 bytes in URL-safe base64 (decision_server.sealing); None: <data_dir>/pii.key
    max_body_bytes: int = 1 << 20
    max_batch: int = 1000
    refresh_seconds: float = 0.25  # how often the registry is polled for changes (one cheap query)
    idempotency_ttl_seconds: int = 86_400
    ship_interval_seconds: float = 0.2
    ship_batch: int = 500
    spool_segment_bytes: int = 8 << 20
    spool_fsync: str = "interval"  # "interval": fsync each ship interval; "always": before every response
    shadow_queue: int = 10_000
    list_source_refresh_seconds: float = 60.0
    plugins: bool = True  # load plugins of the "decide" entry-point group
    trace_by_default: bool = False
    metrics_publish_seconds: float = 1.0  # how often a worker publishes its request metrics (decision_server.metrics)

    @property
    def spool_dir(self) -> Path:
        return Path(self.data_dir) / "spool"


_KINDS = {field.name: field.type for field in fields(ServerConfig)}
ENV_PREFIX = "DECIDE_SERVER_"


def _converted(name: str, value: Any) -> Any:
    kind = _KINDS[name]
    if value is None:
        if "None" in kind:
            return None
        raise ConfigError(f"setting {name} needs a value")
    try:
        if kind.startswith("int"):
            converted: Any = int(value)
        elif kind.startswith("float"):
            converted = float(value)
        elif kind.startswith("bool"):
            converted = value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes", "on")
        else:
            converted = str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"setting {name} expects {kind.split(' ')[0]}, not {value!r}") from None
    if isinstance(converted, (int, float)) and not isinstance(converted, bool) and converted <= 0:
        raise ConfigError(f"setting {name} must be positive, not {value!r}")
    return converted


def load_config(overrides: Mapping[str, Any] | ServerConfig | None = None) -> ServerConfig:
    """Defaults, then DECIDE_SERVER_<NAME> (and DECIDE_DATABASE_URL, DECIDE_PII_KEY), then `overrides`."""
    values: dict[str, Any] = {}
    for name in _KINDS:
        text = os.environ.get(ENV_PREFIX + name.upper())
        if text is not None:
            values[name] = text
    for name, variable in (("database_url", "DECIDE_DATABASE_URL"), ("pii_key", "DECIDE_PII_KEY")):
        if os.environ.get(variable) and name not in values:
            values[name] = os.environ[variable]
    if isinstance(overrides, ServerConfig):
        overrides = {field.name: getattr(overrides, field.name) for field in fields(ServerConfig)}
    for name, value in (overrides or {}).items():
        if name not in _KINDS:
            raise ConfigError(f"unknown setting {name!r} (settings: {', '.join(sorted(_KINDS))})")
        values[name] = value
    config = replace(ServerConfig(), **{name: _converted(name, value) for name, value in values.items()})
    if config.pii_key is not None:
        from decision_server.sealing import parse_key  # sealing needs this module: imported only here

        try:
            parse_key(config.pii_key)
        except ConfigError:
            raise ConfigError("setting pii_key is not a key of 32 bytes in URL-safe base64") from None
    if config.spool_fsync not in ("interval", "always"):
        raise ConfigError(f"setting spool_fsync is 'interval' or 'always', not {config.spool_fsync!r}")
    return config
