"""Plugin functions in the language: the `functions=` a compilation is given, their calls checked and run.

Input: the `FunctionSpec`s a caller passes (`function_table`), a call's argument types (`check_call`, at
check time), its argument values (`call_function`, at run time; None is missing), or the signatures a
compiled policy recorded (`bind_functions`, on load). Output: the functions by name, the checker's problems
with a call, the call's checked result (or a `FunctionFailure` carrying the evaluation error's message), and
the functions a loaded policy runs with.

The reference interpreter and the pure-Python kernel both run a call through `call_function`, so arguments
are converted and results checked once, identically; the Cython kernel bails on a row that calls one (its
escape kind is E_PYTHON), and the row runs on the pure-Python kernel.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Iterable, Mapping
from typing import Any

from compiler import types as T
from compiler.builtins import BUILTINS
from compiler.evaluate import messages
from compiler.plugins import FunctionSpec, PluginError
from compiler.types import Type
from compiler.values import MAX_EXACT_INT

Functions = Mapping[str, FunctionSpec] | Iterable[FunctionSpec] | None


def function_table(functions: Functions) -> dict[str, FunctionSpec]:
    """`functions=` as given (a mapping by name, a sequence, or None) -> {name: FunctionSpec}; PluginError if a
    name is given twice, clashes with a built-in, or a mapping's key is not its function's name."""
    if functions is None:
        return {}
    if isinstance(functions, Mapping):
        items = list(functions.items())
        for key, spec in items:
            if isinstance(spec, FunctionSpec) and key != spec.name:
                raise PluginError(
                    f"functions[{key!r}] is the function {spec.name}; key a mapping by each function's name",
                    code="bad_plugin_spec",
                )
        specs = [spec for _, spec in items]
    elif isinstance(functions, (str, bytes, FunctionSpec)) or not isinstance(functions, Iterable):
        raise PluginError(
            f"functions= takes a mapping or a sequence of FunctionSpec, not {type(functions).__name__}",
            code="bad_plugin_spec",
        )
    else:
        specs = list(functions)
    table: dict[str, FunctionSpec] = {}
    for spec in specs:
        if not isinstance(spec, FunctionSpec):
            raise PluginError(
                f"functions= holds {type(spec).__name__}, not FunctionSpec (compiler.plugins.FunctionSpec)",
                code="bad_plugin_spec",
            )
        if spec.name in BUILTINS:
            raise PluginError(
                f"the function {spec.name} has the name of a built-in function; rename it",
                code="function_clashes_with_builtin",
            )
        if spec.name in table and table[spec.name] != spec:
            raise PluginError(f"two different functions are named {spec.name}", code="duplicate_plugin_name")
        table[spec.name] = spec
    return table


# ------------------------------------------------------------------ check time


def parameter_types(spec: FunctionSpec) -> tuple[Type, ...]:
    return tuple(_type(name) for name in spec.parameters)


def result_type(spec: FunctionSpec) -> Type:
    return _type(spec.result)


def _type(name: str) -> Type:
    parsed = T.from_name(name)
    if parsed is None:  # pragma: no cover - FunctionSpec refuses such a name
        raise PluginError(f"{name!r} is not a type", code="bad_plugin_spec")
    return parsed


def check_call(spec: FunctionSpec, arg_types: list[Type]) -> tuple[str | None, list[tuple[int, str]]]:
    """(a problem with the whole call, [(argument index, problem)]), worded as the built-ins' are."""
    wanted = parameter_types(spec)
    if len(arg_types) != len(wanted):
        return f"{spec.name}: wrong number of arguments; use {spec.usage}", []
    problems = [
        (index, f"{spec.name}: argument {index + 1} must be {parameter}, not {given}")
        for index, (given, parameter) in enumerate(zip(arg_types, wanted))
        if not T.assignable(given, parameter)
    ]
    return None, problems


# -------------------------------------------------------------------- run time


class FunctionFailure(Exception):
    """A call that cannot give a trustworthy value; `message` is the evaluation error's (with its code)."""

    def __init__(self, message: messages.Message) -> None:
        super().__init__(message)
        self.message = message


def call_function(spec: FunctionSpec, args: list[Any], *, reveal: bool) -> Any:
    """Call `spec` on decoded argument values; its checked result (None for missing), or FunctionFailure.

    `reveal=False` (a policy with pii inputs) keeps the exception's text, which may show an argument, out of
    the message: only its type is named.
    """
    if spec.propagates_missing and any(arg is None for arg in args):
        return None
    converted = [_argument(arg, parameter) for arg, parameter in zip(args, spec.parameters)]
    try:
        result = spec.implementation(*converted)
    except Exception as exc:  # the plugin's own failure, whatever it is, becomes an evaluation error
        detail = f"{type(exc).__name__}: {exc}" if reveal else f"{type(exc).__name__} ({messages.HIDDEN_DETAIL})"
        raise FunctionFailure(messages.function_failed(spec.name, detail)) from None
    if result is None:
        return None
    return _result(spec, result)


def _argument(value: Any, type_name: str) -> Any:
    """A `number` argument is always a float and an `int` an int, whichever evaluator computed it (an int
    expression passed where a number is wanted, a JSON 24.0 for an int field)."""
    if value is None:
        return None
    if type_name == "number":
        return float(value)
    if type_name == "int":
        return int(value)
    if type_name.startswith("list of "):
        element = type_name[len("list of ") :]
        return [_argument(item, element) for item in value]
    return value


def _result(spec: FunctionSpec, value: Any) -> Any:
    if not spec.result.startswith("list of "):
        return _scalar(spec, spec.result, value, "")
    if not isinstance(value, (list, tuple)):
        raise FunctionFailure(messages.function_bad_result(spec.name, spec.result, _kind(value)))
    element = spec.result[len("list of ") :]
    return [_scalar(spec, element, item, f"a list whose item {i + 1} is ") for i, item in enumerate(value)]


def _scalar(spec: FunctionSpec, type_name: str, value: Any, where: str) -> Any:
    """The value as the language holds it (a `number` as a float), or FunctionFailure saying what it is."""
    if type_name == "bool":
        ok = isinstance(value, bool)
    elif type_name == "string":
        ok = isinstance(value, str)
    elif type_name == "date":
        ok = isinstance(value, _dt.date) and not isinstance(value, _dt.datetime)
    else:
        ok = not isinstance(value, bool) and isinstance(value, (int, float))
    if not ok:
        raise FunctionFailure(messages.function_bad_result(spec.name, spec.result, where + _kind(value)))
    if type_name == "int":
        if isinstance(value, float) and not value.is_integer():
            raise FunctionFailure(messages.function_bad_result(spec.name, spec.result, where + _kind(value)))
        if not -MAX_EXACT_INT <= value <= MAX_EXACT_INT:
            shown = where + "a whole number outside ±9007199254740992"
            raise FunctionFailure(messages.function_bad_result(spec.name, spec.result, shown))
        return int(value)
    if type_name == "number":
        try:
            number = float(value)
        except OverflowError:  # an int too large for a double
            shown = where + "a whole number too large to represent"
            raise FunctionFailure(messages.function_bad_result(spec.name, spec.result, shown)) from None
        if not math.isfinite(number):
            shown = where + "a number that is not finite"
            raise FunctionFailure(messages.function_bad_result(spec.name, spec.result, shown))
        return number
    return value


def _kind(value: Any) -> str:
    """What a wrong result is, never the value itself (it may derive from a pii input)."""
    if value is None:
        return "a missing value"
    if isinstance(value, bool):
        return "a bool"
    if isinstance(value, int):
        return "an int"
    if isinstance(value, float):
        return "a number with decimals" if math.isfinite(value) else "a number that is not finite"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, _dt.datetime):
        return "a datetime (not a date)"
    if isinstance(value, _dt.date):
        return "a date"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"


# ---------------------------------------------------------------------- on load


def bind_functions(policy: str, declared: list[dict[str, Any]], functions: Functions) -> dict[str, FunctionSpec]:
    """The supplied functions a compiled policy calls, each with the signature it was compiled against;
    PluginError naming every one that is not supplied or whose signature changed."""
    supplied = function_table(functions)
    bound: dict[str, FunctionSpec] = {}
    absent: list[str] = []
    changed: list[str] = []
    for signature in declared:
        spec = supplied.get(signature["name"])
        if spec is None:
            absent.append(_signature_text(signature))
        elif spec.signature_json() != signature:
            changed.append(f"{spec.signature}, but the policy was compiled against {_signature_text(signature)}")
        else:
            bound[spec.name] = spec
    if absent:
        raise PluginError(
            f"policy '{policy}' calls plugin functions that were not supplied: {'; '.join(absent)}; "
            "pass them as functions= (compiler.plugins.collect_functions gives the installed ones)",
            code="function_not_supplied",
        )
    if changed:
        raise PluginError(
            f"policy '{policy}' was compiled against other plugin functions: {'; '.join(changed)}; "
            "compile it again with these functions",
            code="function_signature_changed",
        )
    return bound


def _signature_text(signature: dict[str, Any]) -> str:
    spec_like = f"{signature['name']}({', '.join(signature['parameters'])}) -> {signature['result']}"
    return spec_like if signature["propagates_missing"] else spec_like + " (passes missing on)"
