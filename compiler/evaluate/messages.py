"""Every evaluation error's wording, in one place, for every evaluator.

Input: what went wrong and where (statement name, item such as "rule R01",
span, output). Output: the `EvaluationError` the reference interpreter and
the pure-Python kernel both raise (the Cython kernel raises none: a row that
would fail bails to the pure-Python kernel). The differential tests compare
the evaluators' messages, so a message changed here changes for all of them.
"""

from __future__ import annotations

from dataclasses import replace

from dsl.diagnostics import NO_SPAN, Span
from dsl.errors import EvaluationError


class Message(str):
    """An error message's text with its stable code (what `EvaluationError.to_json` reports as `code`)."""

    code: str

    def __new__(cls, text: str, code: str) -> Message:
        message = super().__new__(cls, text)
        message.code = code
        return message


# A ValueProblem raised by arithmetic (a whole number past ±2**53, a number that is not finite).
VALUE_OUT_OF_RANGE = "value_out_of_range"

HIDDEN_VALUE = "this value (not shown: the policy has pii inputs)"
HIDDEN_ARGUMENT = "invalid argument (not shown: the policy has pii inputs)"
HIDDEN_DETAIL = "its message is not shown: the policy has pii inputs"
_UNKNOWN_PLACE = Span("<policy>", 0, 0, 0, 0)


def evaluation_error(
    message: str,
    span: Span | None,
    *,
    policy: str,
    statement: str | None,
    item: str | None,
    output: str | None = None,
) -> EvaluationError:
    """`message` located at its statement and item ("rule R01 in 'knockouts': ...") and its span.

    The span's file is always `POLICY.policy`, never the path the policy was compiled from: this error may
    be sent to a caller of the decision server, and every evaluator words it identically.
    """
    where = ""
    if statement is not None:
        where = (f"{item} in '{statement}'" if item else f"'{statement}'") + ": "
    code = message.code if isinstance(message, Message) else VALUE_OUT_OF_RANGE
    located = _UNKNOWN_PLACE if span is None or span is NO_SPAN else replace(span, file=f"{policy}.policy")
    return EvaluationError(
        where + message,
        located,
        statement=statement,
        item=item,
        output=output,
        code=code,
    )


def missing_required_output(name: str) -> Message:
    return Message(f"output '{name}' would be given a missing value, and it is not optional", "missing_required_output")


def output_not_allowed(name: str, shown: str, constraint: str) -> Message:
    """`shown` is the value in the language's notation, or HIDDEN_VALUE when the policy has pii inputs."""
    return Message(f"output '{name}' cannot be {shown}; it must be {constraint}", "output_not_allowed")


def missing_reason_code() -> Message:
    return Message("a reason code is missing", "missing_reason_code")


def unique_rows_overlap(rows: list[int]) -> Message:
    shown = [str(row) for row in rows]
    text = f"rows {', '.join(shown[:-1])} and {shown[-1]} all match this input, but the table is unique"
    return Message(text, "unique_rows_overlap")


def builtin_failed(function: str, detail: str) -> Message:
    """`detail` is the problem's own text, or HIDDEN_ARGUMENT when the policy has pii inputs."""
    return Message(f"{function}: {detail}", "builtin_failed")


def function_failed(function: str, detail: str) -> Message:
    """A plugin function raised; `detail` is the exception's type and text (only its type with pii inputs)."""
    return Message(f"the plugin function {function} failed: {detail}", "function_failed")


def function_bad_result(function: str, declared: str, given: str) -> Message:
    """A plugin function returned a value of another type than it declares; `given` describes it, never shows it."""
    return Message(
        f"the plugin function {function} returned {given}, not {declared} as it declares", "function_bad_result"
    )


def list_not_supplied(name: str) -> Message:
    return Message(f"the members of list '{name}' were not supplied (supply them, even if empty)", "list_not_supplied")


def clamp_bounds_inverted(low: float | int, high: float | int) -> str:
    return f"clamp's low bound {low} is above its high bound {high}"
