"""Every diagnostic, input-error and evaluation-error code the engine can give is documented in docs/language.md.

The codes are read from the source (where each one is raised), so a new code without documentation fails here.
"""

from __future__ import annotations

import re

from tests.conftest import REPO

_PATTERNS = [
    r"\.(?:error|warning)\(\s*\"([a-z_]+)\"",  # analysis.error("code", ...) in the checking passes
    r"Diagnostic\(\s*[A-Za-z\"]+,\s*\"([a-z_]+)\"",  # Diagnostic(ERROR, "code", ...)
    r"_syntax_error\(\s*\"([a-z_]+)\"",  # the parser's syntax errors
    r"\bcode = \"([a-z_]+)\"",  # the parser's computed codes
    r"_IndentationError\(\s*\"([a-z_]+)\"",
    r"_Invalid\(\s*\"([a-z_]+)\"",  # input validation
    r"FieldError\([^()]*?,\s*\"([a-z_]+)\"",  # input errors built directly
    r"Message\([^()]*?(?:\([^()]*\)[^()]*?)*,\s*\"([a-z_]+)\"\)",  # evaluation errors (compiler/evaluate/messages.py)
    r"code=\"([a-z_]+)\"",  # evaluation and JSON-input errors with an explicit code
    r"_list_error\([\s\S]*?,\s*\"([a-z_]+)\",?\s*\)",  # named-list errors
]
# Codes that are not the engine's own words but internal markers, never shown to a user.
_INTERNAL = {"corrupt_artefact"}


def _codes_in_source() -> set[str]:
    codes: set[str] = set()
    for path in [*(REPO / "compiler").rglob("*.py"), *(REPO / "dsl").rglob("*.py")]:
        text = path.read_text(encoding="utf-8")
        for pattern in _PATTERNS:
            codes.update(re.findall(pattern, text))
    return codes - _INTERNAL


def test_the_codes_are_found() -> None:
    codes = _codes_in_source()
    # A sample of each kind, so that a pattern that stopped matching fails here rather than passing vacuously.
    for code in ("unexpected_token", "tab", "unreachable_rule", "required", "not_allowed", "unique_rows_overlap"):
        assert code in codes, code
    assert len(codes) > 60


def test_every_code_is_documented_in_the_language_reference() -> None:
    documented = set(re.findall(r"`([a-z_]+)`", (REPO / "docs" / "language.md").read_text(encoding="utf-8")))
    missing = sorted(_codes_in_source() - documented)
    assert not missing, f"codes not documented in docs/language.md: {missing}"
