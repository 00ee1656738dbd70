"""Masking personal values (`pii` inputs) wherever one is shown: all but the last 4 characters hidden.

Input: any JSON value. Output: its masked text. Used by the decision log's views (decision_server.sealing) and
by back-test reports (simulations), so a value is masked the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import orjson


def mask(value: Any) -> str:
    """All but the last 4 characters hidden: enough to recognise a value, never to recover it."""
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    visible = text[-4:] if len(text) > 4 else ""
    return "*" * max(len(text) - len(visible), 4) + visible


def masked(record: Mapping[str, Any], personal: Collection[str]) -> dict[str, Any]:
    """The record with each personal field that has a value masked."""
    return {name: mask(value) if name in personal and value is not None else value for name, value in record.items()}
