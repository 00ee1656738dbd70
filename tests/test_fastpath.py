"""The build and selection of the Cython kernel, and its numbering kept equal to compiler/lower/opcodes.py."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from compiler import compile_file
from compiler.evaluate import implementation
from compiler.lower import opcodes as O
from compiler.lower.arrays import ARRAY_TABLE
from compiler.lower.to_trees import Lowered
from tests.components import require_component, require_module
from tests.conftest import REPO


def _numbering() -> dict[str, int]:
    """Every type, instruction, statement and action number that compiler/lower/opcodes.py defines."""
    return {
        name: value
        for name, value in vars(O).items()
        if name.split("_")[0] in ("T", "OP", "S", "A") and isinstance(value, int) and name.isupper()
    }


def test_kernel_numbering_matches_opcodes() -> None:
    kernel = require_module("the Cython kernel", "compiler._fastpath")
    # Every name on both sides, with the same number: a new opcode missing from the kernel fails here.
    assert kernel.constants() == _numbering()
    assert len([name for name in _numbering() if name.startswith("OP_")]) == len(O.OPCODE_NAMES)
    assert len([name for name in _numbering() if name.startswith("S_")]) == len(O.STATEMENT_NAMES)
    assert len([name for name in _numbering() if name.startswith("A_")]) == len(O.ACTION_NAMES)
    assert len([name for name in _numbering() if name.startswith("T_")]) == len(O.TYPE_NAMES)


@pytest.mark.parametrize(
    ("module", "sources"),
    [
        ("compiler/_fastpath", ["compiler/_fastpath.pyx", "compiler/_fastpath.pxd"]),
        ("compiler/evaluate/_encode_columns", ["compiler/evaluate/_encode_columns.pyx"]),
        ("compiler/evaluate/_vouch", ["compiler/evaluate/_vouch.pyx", "compiler/_fastpath.pxd"]),
    ],
)
def test_built_extensions_are_not_older_than_their_sources(module: str, sources: list[str]) -> None:
    """`pip install -e .` does not rebuild after a .pyx changes; a stale extension must not pass silently."""
    built = sorted(REPO.glob(f"{module}*.so")) + sorted(REPO.glob(f"{module}*.pyd"))
    if not built:
        require_component("the Cython kernel", f"{module} is not built here (`pip install -e .`)")
    for source in sources:
        assert built[0].stat().st_mtime >= (REPO / source).stat().st_mtime, (
            f"{source} is newer than the built extension: run `python setup.py build_ext --inplace`"
        )


def _version_line(environment: dict[str, str]) -> subprocess.CompletedProcess:
    env = {**os.environ, **environment}
    return subprocess.run(
        [sys.executable, "-m", "decide_cli", "version"],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(REPO),
        check=False,
    )


def test_purepython_switch_forces_the_twin() -> None:
    completed = _version_line({"DECIDE_PUREPYTHON": "1"})
    assert completed.returncode == 0
    assert "pure-Python evaluator (forced by DECIDE_PUREPYTHON=1)" in completed.stdout


def test_require_cython_switch_reports_a_missing_kernel() -> None:
    if implementation.IMPLEMENTATION == "cython" or os.environ.get("DECIDE_PUREPYTHON") == "1":
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
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False, cwd=Path(REPO)
    )
    assert completed.returncode != 0
    assert "DECIDE_REQUIRE_CYTHON=1" in completed.stderr


_FUZZ_ARTEFACT = r"""
import random, sys
import numpy as np
import compiler
from compiler.lower.arrays import ARRAY_FIELDS, CorruptArtefact, PolicyArrays
from compiler.compiled import CompiledPolicy
from compiler.testcases import load_cases
from dsl.errors import EvaluationError, InputError

policy = compiler.compile_file(sys.argv[1])
case = next(c for c in load_cases(sys.argv[2]) if "error" not in c["expect"])
data = policy.compiled.to_bytes()
rng = random.Random(int(sys.argv[3]))
names = list(ARRAY_FIELDS)
survived = 0
for _ in range(int(sys.argv[4])):
    arrays = PolicyArrays.from_bytes(data)
    for _ in range(rng.randint(1, 3)):
        name = rng.choice(names)
        array = getattr(arrays, name)
        if array.size == 0:
            continue
        index = rng.randrange(array.size)
        info = np.finfo(array.dtype) if array.dtype.kind == "f" else np.iinfo(array.dtype)
        step = rng.choice([-1, 1])
        nearby = array[index] + step if array.dtype.kind == "f" else int(array[index]) + step
        choice = rng.choice([-1, 0, 1, 2, info.max, info.min, nearby])
        array[index] = np.clip(choice, info.min, info.max)
    try:
        compiled = CompiledPolicy(arrays.validate())
    except CorruptArtefact:
        continue
    survived += 1
    try:
        compiled.evaluate(case["input"], as_of="2026-11-21", lists={"blacklist": []})
    except (InputError, EvaluationError, CorruptArtefact):
        pass
print("survived", survived)
"""


def test_mutated_arrays_that_validate_never_crash_the_evaluator(tmp_path) -> None:
    """Any index, any value, in any array: either validation rejects it or evaluation ends normally.

    Run in a child process, because a read out of bounds in the kernel would kill the test runner.
    """
    script = tmp_path / "fuzz_artefact.py"
    script.write_text(_FUZZ_ARTEFACT, encoding="utf-8")
    policies = REPO / "policies"
    for seed in (1, 2):
        completed = subprocess.run(
            [
                sys.executable,
                str(script),
                str(policies / "consumer_loan.policy"),
                str(policies / "consumer_loan.tests.json"),
                str(seed),
                "1500",
            ],
            capture_output=True,
            text=True,
            cwd=Path(REPO),
            check=False,
        )
        assert completed.returncode == 0, completed.stderr[-3000:]
        assert completed.stdout.startswith("survived")


_C_TYPES = {"int8": "signed char", "int16": "short", "int32": "int", "float64": "double"}


def test_the_kernels_array_pointers_are_the_array_table() -> None:
    """Every array of ARRAY_TABLE is a `const T*` of its dtype's C type in _fastpath.pxd, pinned by name in
    _fastpath.pyx, and nothing else is: a new array cannot be forgotten by the kernel or mistyped in it."""
    pxd = (REPO / "compiler" / "_fastpath.pxd").read_text(encoding="utf-8")
    pyx = (REPO / "compiler" / "_fastpath.pyx").read_text(encoding="utf-8")
    runner = pxd[pxd.index("cdef class Runner:") :]
    declared = dict((name, c_type) for c_type, name in re.findall(r"^    cdef const ([a-z ]+)\* (\w+)", runner, re.M))
    pinned = dict(re.findall(r'self\.(\w+) = <const ([a-z ]+)\*> _pin\(self\.pinned, arrays, "\1"\)', pyx))
    expected = {field.name: _C_TYPES[field.dtype] for field in ARRAY_TABLE}
    derived = {"escape_kind", "fast_kind", "fast_slot", "fast_arg"}  # the kernel's own tables, built on load
    assert {name: c_type for name, c_type in declared.items() if name not in derived} == expected
    assert pinned == expected


def test_lowered_holds_every_array_compile_arrays_does_not_derive() -> None:
    """`Lowered` (lists) and ARRAY_TABLE (arrays) describe the same policy: each array is a Lowered list of the
    same name, or one of the few that compile_arrays builds from Lowered's structured fields."""
    built_from_structures = {
        "set_values": "sets",
        "set_start": "sets",
        "range_low": "ranges",
        "range_high": "ranges",
        "range_flags": "ranges",
        "column_slots": "stmt_columns",
        "column_start": "stmt_columns",
    }
    lowered = {field.name for field in dataclasses.fields(Lowered)}
    for field in ARRAY_TABLE:
        assert field.name in lowered or built_from_structures.get(field.name) in lowered, field.name
    assert set(built_from_structures.values()) <= lowered


def test_every_array_field_is_described() -> None:
    counts = compile_file(REPO / "policies" / "consumer_loan.policy").compiled.arrays.counts()
    for field in ARRAY_TABLE:
        assert field.length.removesuffix("+1") in counts, field
        if field.values is not None and field.values not in ("type", "opcode", "action kind", "statement kind"):
            assert field.values.removesuffix("+") in counts, field
        assert field.meaning, field
