"""Source spans, diagnostics and the project's exception taxonomy.

Input: positions reported by the parser and the checking passes.
Output: `Span`, `Diagnostic` (renderable as ``FILE:LINE:COL: severity: message``
with the source line and a caret, or as JSON) and the exceptions every other
module raises. Nothing here imports Lark or Flask.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True, order=True)
class Span:
    """A region of a source file; lines and columns are 1-based, ends inclusive-exclusive."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line,
            "end_column": self.end_column,
        }

    def __str__(self) -> str:
        if self.line < 1:
            return self.file
        return f"{self.file}:{self.line}:{self.column}"


NO_SPAN = Span("<unknown>", 0, 0, 0, 0)

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One finding about a policy: an error (compilation fails) or a warning."""

    severity: str
    code: str
    message: str
    span: Span
    notes: tuple[str, ...] = field(default=())

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    def sort_key(self) -> tuple:
        return (self.span.file, self.span.line, self.span.column, self.severity != ERROR, self.message)

    def to_json(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "location": self.span.to_json(),
            "notes": list(self.notes),
        }

    def render(self, source: str | None = None) -> str:
        """``FILE:LINE:COL: severity: message``, then the source line with a caret."""
        text = f"{self.span}: {self.severity}: {self.message}"
        lines = [text]
        excerpt = source_excerpt(source, self.span)
        if excerpt:
            lines.append(excerpt)
        lines.extend(f"    note: {note}" for note in self.notes)
        return "\n".join(lines)


MAX_EXCERPT = 120


def source_excerpt(source: str | None, span: Span) -> str:
    """The span's first source line and a caret line under the span (empty if unknown)."""
    if not source or span.line < 1:
        return ""
    source_lines = source.split("\n")  # only \n breaks lines for the lexer; splitlines() knows others
    if span.line > len(source_lines):
        return ""
    line = source_lines[span.line - 1]
    start = max(span.column, 1)
    if span.end_line == span.line and span.end_column > start:
        width = min(span.end_column, len(line) + 1) - start
    else:
        width = 1
    if len(line) > MAX_EXCERPT:
        # Show a window of a very long line around the column, marked with ... at the cut ends.
        left = max(start - 1 - MAX_EXCERPT // 2, 0)
        shown = line[left : left + MAX_EXCERPT]
        prefix = "..." if left else ""
        suffix = "..." if left + MAX_EXCERPT < len(line) else ""
        line = prefix + shown + suffix
        start = start - left + len(prefix)
        width = max(min(width, MAX_EXCERPT - (start - len(prefix)) + 1), 1)
    gutter = f"{span.line:>4} | "
    return f"{gutter}{line}\n{' ' * (len(gutter) - 2)}| {' ' * (start - 1)}{'^' * max(width, 1)}"


def sorted_diagnostics(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    return sorted(diagnostics, key=Diagnostic.sort_key)


class DecideError(Exception):
    """Root of every error this project raises on purpose."""


class PolicyError(DecideError):
    """A policy could not be compiled; carries every diagnostic found, sorted by location."""

    def __init__(self, diagnostics: Sequence[Diagnostic], source: str | None = None) -> None:
        self.diagnostics = sorted_diagnostics(diagnostics)
        self.source = source
        super().__init__(self.render())

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    def render(self) -> str:
        return "\n".join(d.render(self.source) for d in self.diagnostics)


class PolicySyntaxError(PolicyError):
    """The policy text does not follow the grammar (or is not readable text)."""

    def __init__(self, diagnostic: Diagnostic, source: str | None = None) -> None:
        super().__init__([diagnostic], source)
        self.diagnostic = diagnostic


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one input field."""

    field: str
    code: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "message": self.message}

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class InputError(DecideError):
    """The input record does not satisfy the policy's `input:` section; nothing was evaluated."""

    kind = "input"

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(str(e) for e in self.errors))

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "errors": [e.to_json() for e in self.errors]}


class EvaluationError(DecideError):
    """Evaluation could not produce a trustworthy decision (e.g. a missing value for a required output)."""

    kind = "evaluation"

    def __init__(
        self,
        message: str,
        span: Span = NO_SPAN,
        *,
        statement: str | None = None,
        item: str | None = None,
        output: str | None = None,
    ) -> None:
        self.message = message
        self.span = span
        self.statement = statement
        self.item = item
        self.output = output
        location = f"{span}: " if span is not NO_SPAN else ""
        super().__init__(f"{location}{message}")

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": self.kind, "message": self.message}
        if self.span is not NO_SPAN:
            body["location"] = self.span.to_json()
        for key in ("statement", "item", "output"):
            value = getattr(self, key)
            if value is not None:
                body[key] = value
        return body


class InternalCompilerError(DecideError):
    """A bug in Decide itself; users should never see one."""
