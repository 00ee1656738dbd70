"""Shared fixtures: paths to the repository, the spec and the shared data; throwaway databases (tests/databases.py);
the `cython_kernel` fixture for kernel-only tests; what a `DECIDE_PUREPYTHON=1` run leaves out.

A component a test needs but cannot find (PostgreSQL, Chromium, Java, the Cython kernel) goes through
`tests.components.require_component`: a skip, or a failure under `DECIDE_REQUIRE_COMPONENTS=1` (CI sets it).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.components import require_cython_kernel

pytest_plugins = ["tests.databases"]

# The registry and the server do not evaluate policies on a kernel of their own: their tests run once, in the
# kernel run, and are not collected at all in the pure-Python one (neither run twice nor counted as skips).
if os.environ.get("DECIDE_PUREPYTHON") == "1":
    collect_ignore_glob = ["registry", "server"]

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SPEC = SHARED / "spec" / "policy-language.md"
POLICIES = REPO / "policies"
GOLDEN = Path(__file__).resolve().parent / "golden"


def spec_example_source() -> str:
    """The whole example policy of spec §1: the project's copy (tests/golden/features/spec_example.policy), which
    `test_golden_features.test_spec_example_result_verbatim` keeps equal to the spec's own text."""
    return (GOLDEN / "features" / "spec_example.policy").read_text(encoding="utf-8")


def spec_example_input() -> dict:
    """The input record of spec §6's worked example: the project's copy (spec_example.input.json), kept equal to the
    spec's by the same test."""
    return json.loads((GOLDEN / "features" / "spec_example.input.json").read_text(encoding="utf-8"))


def spec_text_input() -> dict:
    """The input record of spec §6's worked example, read from the spec itself."""
    if not SPEC.exists():
        pytest.skip("the shared spec is not next to the repository: its copy in tests/golden cannot be compared")
    match = re.search(r"the input `(\{.*?\})`", SPEC.read_text(encoding="utf-8"), re.S)
    assert match, "spec §6 example input not found"
    return json.loads(match.group(1))


@pytest.fixture
def spec_example() -> str:
    return spec_example_source()


@pytest.fixture(scope="session")
def cython_kernel() -> None:
    """Yields nothing: a kernel-only test runs when the Cython kernel is active, is skipped under
    `DECIDE_PUREPYTHON=1`, and otherwise finds the kernel missing (`require_component`). Use it as
    `pytestmark = pytest.mark.usefixtures("cython_kernel")`. Session-scoped, so Hypothesis tests may use it."""
    require_cython_kernel()
