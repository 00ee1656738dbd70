"""The build and selection of the Cython kernel, and its numbering kept equal to compiler/opcodes.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from compiler import fastpath
from compiler import opcodes as O
from tests.conftest import REPO


def test_kernel_numbering_matches_opcodes() -> None:
    kernel = pytest.importorskip("compiler._fastpath")
    numbers = kernel.constants()
    assert numbers["types"] == (O.T_NUM, O.T_INT, O.T_BOOL, O.T_STR, O.T_DATE, O.T_OBJ)
    assert numbers["last_op"] == len(O.OPCODE_NAMES) - 1 == O.OP_JUMP_IF_MISSING_KEEP
    assert numbers["statements"] == tuple(range(len(O.STATEMENT_NAMES)))
    assert numbers["actions"] == (O.A_ASSIGN, O.A_REASON, O.A_STOP, O.A_SET, O.A_FIELD)


def test_built_kernel_is_not_older_than_its_source() -> None:
    """`pip install -e .` does not rebuild after the .pyx changes; a stale kernel must not pass silently."""
    built = sorted(REPO.glob("compiler/_fastpath*.so")) + sorted(REPO.glob("compiler/_fastpath*.pyd"))
    if not built:
        pytest.skip("the Cython kernel is not built here")
    source = REPO / "compiler" / "_fastpath.pyx"
    assert built[0].stat().st_mtime >= source.stat().st_mtime, (
        "compiler/_fastpath.pyx is newer than the built kernel: run `python setup.py build_ext --inplace`"
    )


def _version_line(environment: dict[str, str]) -> subprocess.CompletedProcess:
    env = {**os.environ, **environment}
    return subprocess.run(
        [sys.executable, "-m", "decide_cli", "version"], capture_output=True, text=True, env=env, cwd=Path(REPO),
        check=False,
    )


def test_purepython_switch_forces_the_twin() -> None:
    completed = _version_line({"DECIDE_PUREPYTHON": "1"})
    assert completed.returncode == 0
    assert "pure-Python evaluator (forced by DECIDE_PUREPYTHON=1)" in completed.stdout


def test_require_cython_switch_reports_a_missing_kernel() -> None:
    if fastpath.IMPLEMENTATION == "cython" or os.environ.get("DECIDE_PUREPYTHON") == "1":
        # Hide the built kernel from a child process to prove the switch turns its absence into an error.
        code = (
            "import sys, importlib.abc\n"
            "class Block(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path, target=None):\n"
            "        if name == 'compiler._fastpath': raise ImportError('hidden for the test')\n"
            "sys.meta_path.insert(0, Block())\n"
            "import compiler\n"
        )
    else:
        code = "import compiler\n"
    env = {**os.environ, "DECIDE_REQUIRE_CYTHON": "1"}
    env.pop("DECIDE_PUREPYTHON", None)
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False,
                               cwd=Path(REPO))
    assert completed.returncode != 0
    assert "DECIDE_REQUIRE_CYTHON=1" in completed.stderr
