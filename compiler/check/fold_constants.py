"""Constant folding of literal expressions (numbers, strings, bools, `date("...")`, negation, arithmetic).

Input: an AST expression. Output: its value when it is a constant, else
`NOT_CONSTANT`. Used to check literals against `in` constraints, for output
defaults and list members, and by the exact reasoning about conditions.
"""

from __future__ import annotations

import datetime as _dt

from compiler.values import ValueProblem, parse_date
from dsl import ast


class _NotConstant:
    def __repr__(self) -> str:
        return "NOT_CONSTANT"


NOT_CONSTANT = _NotConstant()


def constant_value(expr) -> object:
    """The value of a constant expression, or NOT_CONSTANT (also for anything that would fail to evaluate)."""
    if isinstance(expr, (ast.Number, ast.String, ast.Bool)):
        return expr.value
    if isinstance(expr, ast.Negate):
        inner = constant_value(expr.operand)
        if isinstance(inner, (int, float)) and not isinstance(inner, bool):
            return -inner
        return NOT_CONSTANT
    if isinstance(expr, ast.Arith):
        left, right = constant_value(expr.left), constant_value(expr.right)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right)):
            return NOT_CONSTANT
        if expr.op == "+":
            return left + right
        if expr.op == "-":
            return left - right
        if expr.op == "*":
            return left * right
        if right == 0:
            return NOT_CONSTANT
        return left / right
    if isinstance(expr, ast.Call) and expr.func == "date" and len(expr.args) == 1:
        text = constant_value(expr.args[0])
        if isinstance(text, str):
            try:
                return parse_date(text)
            except ValueProblem:
                return NOT_CONSTANT
    return NOT_CONSTANT


def is_constant(expr) -> bool:
    return constant_value(expr) is not NOT_CONSTANT


def show_value(value: object) -> str:
    """A value as an analyst would write it in a policy."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, _dt.date):
        return f'date("{value.isoformat()}")'
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if value is None:
        return "missing"
    return str(value)
