"""Components a test cannot run without (PostgreSQL, Chromium, Java, the Cython kernel): a skip, or a failure in CI.

Input: the environment. `DECIDE_REQUIRE_COMPONENTS=1` (CI sets it) turns every "component missing" skip into a
failure, so a CI machine that lost PostgreSQL or never built the kernel cannot pass by skipping. Output:
`require_component(name, reason)`, the one place that decides; `require_executable` and `require_cython_kernel`
built on it.

Only skips caused by a missing component go through here. Skips that are the point of a run stay plain
`pytest.skip`: kernel-only tests under `DECIDE_PUREPYTHON=1` (that run is the pure-Python twin's), or a missing
`../shared` directory next to the checkout.
"""

from __future__ import annotations

import importlib
import os
import shutil
from types import ModuleType
from typing import NoReturn

import pytest

SWITCH = "DECIDE_REQUIRE_COMPONENTS"


def components_required() -> bool:
    """Whether a missing component fails the test (`DECIDE_REQUIRE_COMPONENTS=1`) instead of skipping it."""
    return os.environ.get(SWITCH) == "1"


def require_component(name: str, reason: str) -> NoReturn:
    """Stop the current test because `name` is missing: `pytest.fail` under the switch, `pytest.skip` otherwise.

    Called from a fixture, a test or a module's setup; never returns. `reason` says what was looked for, so the
    skip or failure line tells the reader what to install.
    """
    __tracebackhide__ = True  # pytest reports the skip or failure at the caller, not here
    if components_required():
        pytest.fail(f"{name} is missing: {reason} ({SWITCH}=1 makes a missing component a failure)", pytrace=False)
    pytest.skip(f"{name} is missing: {reason} (under {SWITCH}=1 this fails)")


def require_executable(component: str, *programs: str) -> str:
    """The path of the first of `programs` found on PATH; `component` is missing when none is."""
    __tracebackhide__ = True
    for program in programs:
        found = shutil.which(program)
        if found:
            return found
    require_component(component, f"none of {', '.join(programs)} is on PATH")


def require_module(component: str, module: str) -> ModuleType:
    """`importlib.import_module(module)`, or `component` is missing (the switch-aware `pytest.importorskip`)."""
    __tracebackhide__ = True
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        require_component(component, f"`import {module}` failed ({exc})")


def require_cython_kernel() -> None:
    """For tests of the Cython kernel itself: return when it is the active implementation.

    Under `DECIDE_PUREPYTHON=1` the test is skipped on purpose (that run is the pure-Python twin's, and the kernel
    run covers it); otherwise a kernel that is not built is a missing component.
    """
    __tracebackhide__ = True
    if os.environ.get("DECIDE_PUREPYTHON") == "1":
        pytest.skip("the Cython kernel is not active (DECIDE_PUREPYTHON=1)")
    from compiler.evaluate import implementation

    if implementation.IMPLEMENTATION != "cython":
        require_component("the Cython kernel", f"{implementation.DETAIL}; build it with `pip install -e .`")
