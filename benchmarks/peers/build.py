"""Build `columnar.pyx` in place on first use, and turn a pyarrow table into the columns it takes.

`load_columnar()` returns the compiled `benchmarks.peers.columnar` module. The first call (or any
call after `columnar.pyx` changed) runs Cython and the C compiler: the generated C and object files
go to `benchmarks/peers/build/` and the extension module next to the .pyx, nothing outside
`benchmarks/` (both are git-ignored). Without Cython, numpy's headers or a working C compiler it
raises `ColumnarUnavailable` with the reason, and the benchmarks fail with that message.

    python -m benchmarks.peers.build     # build now and say where the module is
"""

from __future__ import annotations

import importlib
import importlib.machinery
import os
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "columnar.pyx"
BUILD_DIR = HERE / "build"
MODULE = "benchmarks.peers.columnar"
# -O3 for the loop; no fused multiply-add, so every double rounds as in CPython.
COMPILE_ARGS = ["-O3", "-ffp-contract=off"]


class ColumnarUnavailable(RuntimeError):
    """The Cython peer cannot be built here (no Cython, no numpy headers or no C compiler)."""


def _built_module() -> Path | None:
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = HERE / f"columnar{suffix}"
        if candidate.exists():
            return candidate
    return None


def _up_to_date() -> bool:
    built = _built_module()
    return built is not None and built.stat().st_mtime >= SOURCE.stat().st_mtime


def _compiler_available() -> str | None:
    compiler = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(compiler)


def build(force: bool = False) -> Path:
    """Compile columnar.pyx if needed; returns the path of the extension module."""
    if not force and _up_to_date():
        return _built_module()  # type: ignore[return-value]
    try:
        import numpy
        from Cython.Build import cythonize
        from setuptools import Distribution, Extension
    except ImportError as exc:
        raise ColumnarUnavailable(f"the Cython peer needs Cython, numpy and setuptools ({exc})") from None
    if _compiler_available() is None:
        raise ColumnarUnavailable("no C compiler found (set CC, or install gcc/clang) to build the Cython peer")
    BUILD_DIR.mkdir(exist_ok=True)
    extension = Extension(
        MODULE,
        [SOURCE.name],
        include_dirs=[numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=COMPILE_ARGS,
    )
    # Paths relative to this folder keep the generated C at build/columnar.c and the object file at
    # build/temp/build/columnar.o (cythonize nests absolute paths whole under build_dir).
    cwd = os.getcwd()
    os.chdir(HERE)
    try:
        modules = cythonize([extension], build_dir=BUILD_DIR.name, quiet=True, language_level=3)
        with tempfile.TemporaryDirectory(dir=BUILD_DIR) as build_lib:
            distribution = Distribution({"name": "decide-bench-peers", "ext_modules": modules})
            command = distribution.get_command_obj("build_ext")
            command.build_lib = build_lib
            command.build_temp = str(BUILD_DIR / "temp")
            command.ensure_finalized()
            command.run()
            produced = Path(command.get_ext_fullpath(MODULE))
            for old in HERE.glob("columnar.*.so"):
                old.unlink()
            target = HERE / produced.name
            shutil.copy2(produced, target)
    except Exception as exc:  # CompileError, LinkError, DistutilsExecError, Cython errors...
        raise ColumnarUnavailable(f"building the Cython peer failed: {exc}") from exc
    finally:
        os.chdir(cwd)
    return target


def load_columnar():
    """The compiled `benchmarks.peers.columnar` module, built on first use."""
    build()
    if MODULE in sys.modules:
        return sys.modules[MODULE]
    importlib.invalidate_caches()
    return importlib.import_module(MODULE)


def columns_from_table(table) -> dict[str, Any]:
    """pyarrow.Table of `data.load_table` -> keyword arguments of `columnar.decide_columns`.

    Zero-copy where arrow allows it; income's nulls become NaN and dependants' nulls -1.
    """
    import numpy as np
    import pyarrow.compute as pc

    def ints(name: str, missing: int | None = None):
        column = table.column(name)
        if missing is not None:
            column = pc.fill_null(column, missing)
        return np.ascontiguousarray(column.to_numpy(), dtype=np.int64)

    def floats(name: str):
        return np.ascontiguousarray(table.column(name).to_numpy(), dtype=np.float64)  # nulls -> NaN

    return {
        "age": ints("age"),
        "income": floats("MonthlyIncome"),
        "debt_ratio": floats("DebtRatio"),
        "utilisation": floats("RevolvingUtilizationOfUnsecuredLines"),
        "open_lines": ints("NumberOfOpenCreditLinesAndLoans"),
        "real_estate": ints("NumberRealEstateLoansOrLines"),
        "late_90": ints("NumberOfTimes90DaysLate"),
        "dependants": ints("NumberOfDependents", missing=-1),
    }


if __name__ == "__main__":
    print(build(force="--force" in sys.argv))
