"""The public facade: policy text in, a checked, evaluable `Policy` out.

`compile_source(text, filename=)` and `compile_file(path)` chain the stages —
`dsl.parse` -> the checking passes (`compiler.check.passes.PASSES`) — and return a
`Policy`, or raise `PolicyError` with every diagnostic sorted by location.
`check_source` runs the same stages but returns the diagnostics instead of
raising, for `decide check` and editors. Each takes `functions=`: the plugin
functions (`compiler.plugins.FunctionSpec`) the policy may call, none unless
given, so that compiling never depends on what happens to be installed.
"""

from __future__ import annotations

import datetime as _dt
import gc
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dsl
from compiler.check.analysis import Analysis
from compiler.check.passes import run_passes
from compiler.compiled import CompiledPolicy
from compiler.decision import Decision
from compiler.evaluate.implementation import IMPLEMENTATION
from compiler.evaluate.lists import PreparedList, PreparedLists, prepare_lists
from compiler.evaluate.reference import evaluate_reference
from compiler.evaluate.results import build_result, resolve_as_of
from compiler.evaluate.validate_input import validate_input
from compiler.functions import Functions, function_table
from compiler.info import FieldInfo, PolicyInfo, policy_info
from dsl import ast
from dsl.diagnostics import ERROR, Diagnostic, Span
from dsl.errors import PolicyError, PolicySyntaxError


class Policy:
    """A checked policy: schema, diagnostics (warnings), content hash and `evaluate`."""

    def __init__(self, tree: ast.Policy, analysis: Analysis, source: str, filename: str) -> None:
        self.ast = tree
        self.analysis = analysis
        self.source = source
        self.filename = filename
        self.diagnostics: list[Diagnostic] = list(analysis.diagnostics)
        # Spans at the file it was compiled from (the compiled policy's carry only the policy's name).
        self.info: PolicyInfo = policy_info(tree)
        self.inputs: tuple[FieldInfo, ...] = self.info.inputs
        self.outputs: tuple[FieldInfo, ...] = self.info.outputs
        self.store_lists: dict[str, str] = self.info.store_lists
        self.compiled = CompiledPolicy.from_policy(tree, analysis, source)
        self.source_hash: str = self.compiled.arrays.metadata["source_hash"]
        self.content_hash: str = self.compiled.content_hash
        # The plugin functions it calls (FunctionSpec by name); the content hash includes their signatures.
        self.functions = self.compiled.functions

    @property
    def name(self) -> str:
        return self.ast.header.name

    @property
    def title(self) -> str | None:
        return self.ast.header.title

    @property
    def kind(self) -> str:
        return self.ast.header.kind or "generic"

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if not d.is_error]

    @property
    def key_field(self) -> str | None:
        return next((f.name for f in self.inputs if f.key), None)

    def __repr__(self) -> str:
        return f"<Policy {self.name} {self.source_hash[:12]}>"

    def __reduce__(self):
        # The analysis keys its side tables by id() of AST nodes, which do not survive pickling:
        # a pickled Policy is its source, compiled again where it is loaded (compiling is deterministic),
        # with the plugin functions it calls (pickled by reference, as any function is).
        if not self.functions:
            return (compile_source, (self.source, self.filename))
        return (_compile_again, (self.source, self.filename, tuple(self.functions.values())))

    def evaluate(
        self,
        record: Mapping[str, Any],
        *,
        as_of: _dt.date | str | None = None,
        lists: Mapping[str, Iterable[Any]] | None = None,
        ignore_extra: bool = False,
        trace: bool = True,
        version: int | None = None,
        engine: str = "compiled",
    ) -> dict[str, Any]:
        """Validate `record`, evaluate, and return the result object of spec §6.

        Raises `InputError` (every field problem at once) or `EvaluationError`.
        `as_of` defaults to the current UTC date; `lists` supplies the members
        of the policy's `list` declarations that have no inline value.
        `engine="reference"` runs the reference interpreter instead of the
        compiled decision trees (both give identical results).
        """
        if engine == "compiled":
            return self.compiled.evaluate(
                record, as_of=as_of, lists=lists, ignore_extra=ignore_extra, trace=trace, version=version
            )
        if engine != "reference":
            raise ValueError(f"engine must be 'compiled' or 'reference', not {engine!r}")
        values = validate_input(self.ast.inputs, record, ignore_extra=ignore_extra)
        today = resolve_as_of(as_of)
        prepared = prepare_lists(self.store_lists, lists, self.compiled.list_declarations)
        outputs, trace_entries = evaluate_reference(self.ast, self.analysis, values, today, prepared)
        return build_result(self.name, outputs, trace_entries, trace=trace, version=version)

    def decide(
        self,
        record: Mapping[str, Any],
        *,
        as_of: _dt.date | str | None = None,
        lists: Mapping[str, Iterable[Any]] | None = None,
        ignore_extra: bool = False,
        trace: bool = True,
        version: int | None = None,
        engine: str = "compiled",
    ) -> Decision:
        """`evaluate` as a typed `Decision`: outputs, reasons, trace (strings and records), content hash, engine."""
        result = self.evaluate(
            record, as_of=as_of, lists=lists, ignore_extra=ignore_extra, trace=trace, version=version, engine=engine
        )
        used = "reference" if engine == "reference" else IMPLEMENTATION
        return Decision.from_result(result, content_hash=self.content_hash, engine=used, info=self.info)

    def evaluate_batch(self, table, **options):
        """Evaluate every row of a pyarrow Table or pandas DataFrame; see `CompiledPolicy.evaluate_batch`."""
        return self.compiled.evaluate_batch(table, **options)

    def prepare_lists(self, lists: Mapping[str, Iterable[Any] | PreparedList] | None) -> PreparedLists:
        """Check and freeze list members once, for many evaluations (`lists=` accepts the result).

        Each value is an iterable of members or a `PreparedList` (one list at one revision, shared by every
        policy that declares it: nothing is converted again).
        """
        return prepare_lists(self.store_lists, lists, self.compiled.list_declarations)


@contextmanager
def _collector_paused():
    """Pause the cyclic garbage collector: parsing and checking allocate many small objects but
    create no cycles, and the collector's passes cost about a tenth of the time on large policies."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def analyse_source(
    text: str | bytes, filename: str = "<policy>", functions: Functions = None
) -> tuple[ast.Policy | None, Analysis | None, str | None, list[Diagnostic]]:
    """Parse and check; returns (ast, analysis, decoded source, diagnostics sorted by location)."""
    table = function_table(functions)  # a bad `functions=` is the caller's error (PluginError), before parsing
    with _collector_paused():
        try:
            source = dsl.decode_source(text, filename)
            tree = dsl.parse(source, filename)
        except PolicySyntaxError as exc:
            return None, None, exc.source, exc.diagnostics
        analysis = Analysis(tree, filename, source, functions=table)
        run_passes(analysis)
    diagnostics = sorted(analysis.diagnostics, key=Diagnostic.sort_key)
    if analysis.truncated:
        diagnostics.append(
            Diagnostic(
                ERROR if analysis.has_errors else "warning",
                "too_many_diagnostics",
                "too many problems; only the first ones are shown",
                Span(filename, 0, 0, 0, 0),
            )
        )
    return tree, analysis, source, diagnostics


def check_source(text: str | bytes, filename: str = "<policy>", functions: Functions = None) -> list[Diagnostic]:
    """Every diagnostic (errors and warnings) for a policy text, sorted by location; never raises PolicyError.

    `functions` are the plugin functions the policy may call (a mapping by name or a sequence of
    `compiler.plugins.FunctionSpec`); any other call is an `unknown_function` error.
    """
    return analyse_source(text, filename, functions)[3]


def compile_source(text: str | bytes, filename: str = "<policy>", functions: Functions = None) -> Policy:
    """Parse and check policy text; return a `Policy` or raise `PolicyError` listing every problem.

    `functions` are the plugin functions the policy may call (see `check_source`); the compiled policy
    records the signatures of the ones it calls, and its content hash includes them.
    """
    tree, analysis, source, diagnostics = analyse_source(text, filename, functions)
    if tree is None or analysis is None or any(d.is_error for d in diagnostics):
        raise PolicyError(diagnostics, source)
    policy = Policy(tree, analysis, source or "", filename)
    policy.diagnostics = diagnostics
    return policy


def read_policy_file(path: str | Path) -> bytes:
    """The bytes of a policy file, or a PolicyError that says why it cannot be read."""
    path = Path(path)
    try:
        if path.is_dir():
            raise PolicyError([_file_problem(path, "is_directory", "is a directory, not a policy file")])
        return path.read_bytes()
    except FileNotFoundError:
        raise PolicyError([_file_problem(path, "file_not_found", "no such file")]) from None
    except PermissionError:
        raise PolicyError([_file_problem(path, "permission_denied", "permission denied")]) from None
    except OSError as exc:
        raise PolicyError([_file_problem(path, "unreadable", f"cannot read the file ({exc.strerror})")]) from None


def _file_problem(path: Path, code: str, message: str) -> Diagnostic:
    return Diagnostic(ERROR, code, message, Span(str(path), 0, 0, 0, 0))


def compile_file(path: str | Path, functions: Functions = None) -> Policy:
    """Read, parse and check a `.policy` file; see `compile_source`."""
    return compile_source(read_policy_file(path), str(path), functions)


def _compile_again(source: str, filename: str, functions: tuple) -> Policy:
    """What a pickled Policy that calls plugin functions is loaded with (`Policy.__reduce__`)."""
    return compile_source(source, filename, functions)
