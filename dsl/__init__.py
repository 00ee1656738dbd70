"""The policy language: grammar, parser and AST.

`dsl.parse(text, filename=...)` turns policy text into an immutable
`dsl.ast.Policy` whose every node carries its source span. Nothing in this
package imports Flask or the compiler.
"""

from __future__ import annotations

from dsl import ast
from dsl.diagnostics import Diagnostic, Span
from dsl.errors import (
    DecideError,
    EvaluationError,
    FieldError,
    InputError,
    InternalCompilerError,
    PolicyError,
    PolicySyntaxError,
)
from dsl.parser import RESERVED_WORDS, decode_source, parse

__all__ = [
    "RESERVED_WORDS",
    "DecideError",
    "Diagnostic",
    "EvaluationError",
    "FieldError",
    "InputError",
    "InternalCompilerError",
    "PolicyError",
    "PolicySyntaxError",
    "Span",
    "ast",
    "decode_source",
    "parse",
]
