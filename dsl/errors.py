"""The project's exception taxonomy: every error Decide raises on purpose.

Input: the diagnostics of a failed compilation, the field problems of an
input record, or the location of a failed evaluation. Output: exceptions
that render as text and as JSON (`to_json`) for the CLI and the HTTP API.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dsl.diagnostics import NO_SPAN, Diagnostic, Span, sorted_diagnostics


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

    def to_json(self) -> dict[str, Any]:
        """Every diagnostic (errors and warnings) with its code, message, location and notes."""
        return {"kind": "policy", "diagnostics": [d.to_json() for d in self.diagnostics]}


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
        code: str = "evaluation_failed",
    ) -> None:
        self.message = str(message)
        self.code = code
        self.span = span
        self.statement = statement
        self.item = item
        self.output = output
        location = f"{span}: " if span is not NO_SPAN else ""
        super().__init__(f"{location}{message}")

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": self.kind, "code": self.code, "message": self.message}
        if self.span is not NO_SPAN:
            body["location"] = self.span.to_json()
        for key in ("statement", "item", "output"):
            value = getattr(self, key)
            if value is not None:
                body[key] = value
        return body


class InternalCompilerError(DecideError):
    """A bug in Decide itself; users should never see one."""
