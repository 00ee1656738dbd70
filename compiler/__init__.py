"""Checks policies and evaluates them.

Public API: `compile_file(path)` / `compile_source(text, filename=...)` return a
`Policy` with `.evaluate(record, *, as_of=None, lists=None)`, `.diagnostics`,
`.inputs` / `.outputs` schemas and `.content_hash`; `check_source` returns the
diagnostics without raising. Nothing in this package imports Flask.
"""

from __future__ import annotations

from compiler.policy import (
    COMPILER_VERSION,
    FieldSchema,
    Policy,
    check_source,
    compile_file,
    compile_source,
    read_policy_file,
)
from dsl.diagnostics import Diagnostic, Span
from dsl.errors import DecideError, EvaluationError, FieldError, InputError, PolicyError, PolicySyntaxError

__all__ = [
    "COMPILER_VERSION",
    "DecideError",
    "Diagnostic",
    "EvaluationError",
    "FieldError",
    "FieldSchema",
    "InputError",
    "Policy",
    "PolicyError",
    "PolicySyntaxError",
    "Span",
    "check_source",
    "compile_file",
    "compile_source",
    "read_policy_file",
]
