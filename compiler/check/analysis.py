"""The state the checking passes share: symbols, name bindings, types, diagnostics.

Input: a parsed `ast.Policy`. Output: an `Analysis` that each pass in
`compiler.check.passes.PASSES` reads and extends, in order. Passes append
diagnostics here instead of raising, so every mistake is reported at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from compiler.types import Type
from dsl import ast
from dsl.diagnostics import ERROR, WARNING, Diagnostic, Span

# Symbol kinds
INPUT = "input"
OUTPUT = "output"
LIST = "list"
LET = "let"
SCORECARD = "scorecard"
TABLE_COLUMN = "table column"
COLLECT_TABLE = "collect table"
REASONS = "reasons"

MAX_DIAGNOSTICS = 200


@dataclass(slots=True)
class Symbol:
    """A name a policy can read: an input, output, list, let, scorecard, or table result."""

    name: str
    kind: str
    span: Span
    node: Any  # the declaring AST node
    order: int  # index of the defining statement; -1 for inputs, outputs and `reasons`
    type: Type | None = None
    nullable: bool = True
    used: bool = False
    assigned: bool = False

    @property
    def field(self) -> ast.Field | None:
        return self.node if isinstance(self.node, ast.Field) else None

    def describe(self) -> str:
        return f"{self.kind} '{self.name}'"


@dataclass(slots=True)
class Analysis:
    policy: ast.Policy
    filename: str
    source: str | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    symbols: dict[str, Symbol] = field(default_factory=dict)
    statement_names: dict[str, Span] = field(default_factory=dict)
    # Side tables keyed by id() of AST expression nodes (the AST itself is immutable).
    bindings: dict[int, Symbol] = field(default_factory=dict)
    types: dict[int, Type] = field(default_factory=dict)
    nullable: dict[int, bool] = field(default_factory=dict)
    # Statement index -> names it assigns; filled by check_types.
    assigned_by_statement: dict[int, set[str]] = field(default_factory=dict)
    truncated: bool = False
    # The plugin functions the compilation was given (compiler.plugins.FunctionSpec by name), and the ones
    # the policy calls, in the order first called: what its compiled form and content hash record.
    functions: dict[str, Any] = field(default_factory=dict)
    functions_used: dict[str, Any] = field(default_factory=dict)

    def report(self, severity: str, code: str, message: str, span: Span, notes: tuple[str, ...] = ()) -> None:
        if len(self.diagnostics) >= MAX_DIAGNOSTICS:
            self.truncated = True
            return
        self.diagnostics.append(Diagnostic(severity, code, message, span, notes))

    def error(self, code: str, message: str, span: Span, notes: tuple[str, ...] = ()) -> None:
        self.report(ERROR, code, message, span, notes)

    def warning(self, code: str, message: str, span: Span, notes: tuple[str, ...] = ()) -> None:
        self.report(WARNING, code, message, span, notes)

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.diagnostics)

    def type_of(self, expr: Any) -> Type | None:
        return self.types.get(id(expr))

    def symbol_of(self, name_node: ast.Name) -> Symbol | None:
        return self.bindings.get(id(name_node))

    @property
    def inputs(self) -> list[Symbol]:
        return [s for s in self.symbols.values() if s.kind == INPUT]

    @property
    def outputs(self) -> list[Symbol]:
        return [s for s in self.symbols.values() if s.kind == OUTPUT]
