"""Pass: the header and the `input:` / `output:` declarations are well formed.

Input: `Analysis` with the parsed policy. Output: diagnostics for a missing
title, an unknown kind, repeated header items or modifiers, more than one
`key`, outputs with neither default nor `optional`, and modifiers that do not
apply to a field's type.
"""

from __future__ import annotations

from compiler.check.analysis import Analysis
from dsl import ast
from dsl.diagnostics import Span

KINDS = ("approval", "limit", "collections", "offer", "generic")


def check_declarations(analysis: Analysis) -> None:
    header = analysis.policy.header
    seen: dict[str, object] = {}
    for item, span in header.items:
        if item in seen:
            analysis.error("duplicate_header_item", f'"{item}" is given twice in the policy header', span)
        seen[item] = span
    if header.title is None:
        analysis.error(
            "missing_title",
            'the policy header needs a title, e.g. title: "Consumer loan origination"',
            header.name_span,
        )
    if header.kind is not None and header.kind not in KINDS:
        analysis.error(
            "unknown_kind", f'unknown policy kind "{header.kind}"; the kinds are {", ".join(KINDS)}', header.kind_span
        )

    keys = [f for f in analysis.policy.inputs if f.key]
    for extra in keys[1:]:
        analysis.error("two_keys", f"only one input can be the key; '{keys[0].name}' already is", extra.name_span)
    for field in analysis.policy.inputs:
        _check_modifiers(analysis, field, "input")
        if field.default is not None:  # pragma: no cover - the grammar has no input defaults
            analysis.error("input_default", "inputs cannot have defaults", field.span)
    for field in analysis.policy.outputs:
        _check_modifiers(analysis, field, "output")
        for word in ("key", "pii"):
            if word in field.modifiers:
                analysis.error("output_modifier", f'"{word}" applies to inputs, not outputs', field.name_span)
        is_record_list = field.type.name == "list" and field.type.element is None
        if field.type.name == "list" and field.type.element is not None and not field.optional:
            analysis.error(
                "list_output_optional",
                f"output '{field.name}' is a {field.type}, which has no literal default; make it optional",
                field.name_span,
            )
        elif field.default is None and not field.optional and not is_record_list:
            analysis.error(
                "output_needs_default",
                f"output '{field.name}' needs a default (= VALUE) or the word optional",
                field.name_span,
            )
        if field.type.name == "list" and field.default is not None:
            analysis.error(
                "list_output_default", f"list output '{field.name}' starts empty and takes no default", field.span
            )
    if any(f.name == "reasons" for f in analysis.policy.outputs):
        field = next(f for f in analysis.policy.outputs if f.name == "reasons")
        analysis.error("reasons_declared", "the output reasons always exists and must not be declared", field.name_span)


def _check_modifiers(analysis: Analysis, field: ast.Field, section: str) -> None:
    type_span = field.type.span
    if field.type.name == "list" and field.type.element not in (None, "string", "int", "number"):
        element = field.type.element or ""
        # Point at the element type, the last word of `list of T`.
        start = type_span.end_column - len(element)
        analysis.error(
            "bad_list_type",
            f"an {section} list holds strings, ints or numbers, not {element}",
            Span(type_span.file, type_span.end_line, start, type_span.end_line, type_span.end_column),
        )
    if section == "input" and field.type.name == "list" and field.type.element is None:
        analysis.error(
            "bad_list_type", "an input cannot be a list of records; use list of string, int or number", type_span
        )
    counts: dict[str, int] = {}
    for modifier in field.modifiers:
        counts[modifier] = counts.get(modifier, 0) + 1
    for modifier, count in counts.items():
        if count > 1:
            what = "an in constraint" if modifier == "in" else f'"{modifier}"'
            analysis.error("duplicate_modifier", f"{section} '{field.name}' has {what} twice", field.name_span)
    if field.allowed is None:
        return
    type_name = field.type.name
    if isinstance(field.allowed, ast.Interval) and type_name not in ("int", "number", "date"):
        analysis.error(
            "bad_constraint",
            f"a range [a..b] needs a number or date field; '{field.name}' is {field.type}",
            field.allowed.span,
        )
    if isinstance(field.allowed, ast.SetLiteral) and type_name not in ("int", "number", "string"):
        analysis.error(
            "bad_constraint",
            f"allowed values {{...}} need a string or number field; '{field.name}' is {field.type}",
            field.allowed.span,
        )
