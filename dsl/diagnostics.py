"""Source spans and diagnostics.

Input: positions reported by the parser and the checking passes.
Output: `Span` and `Diagnostic` (renderable as ``FILE:LINE:COL: severity: message``
with the source line and a caret, or as JSON). The exceptions that carry them
are in `dsl/errors.py`. Nothing here imports Lark or Flask.
"""

from __future__ import annotations

from collections.abc import Iterable
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
