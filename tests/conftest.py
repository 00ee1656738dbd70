"""Shared fixtures: paths to the repository, the spec and the shared data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SPEC = SHARED / "spec" / "policy-language.md"
POLICIES = REPO / "policies"
GOLDEN = Path(__file__).resolve().parent / "golden"


def spec_example_source() -> str:
    """The whole example policy of spec §1."""
    if not SPEC.exists():
        pytest.skip("the shared spec is not next to the repository")
    match = re.search(r"```\n(# Consumer loan origination\n.*?)```", SPEC.read_text(encoding="utf-8"), re.S)
    assert match, "spec §1 example not found"
    return match.group(1)


def spec_example_input() -> dict:
    """The input record of spec §6's worked example, read from the spec itself."""
    if not SPEC.exists():
        pytest.skip("the shared spec is not next to the repository")
    match = re.search(r"the input `(\{.*?\})`", SPEC.read_text(encoding="utf-8"), re.S)
    assert match, "spec §6 example input not found"
    return json.loads(match.group(1))


@pytest.fixture
def spec_example() -> str:
    return spec_example_source()
