"""The reference evaluator: walks the checked AST, written to be obviously correct.

Input: a checked `ast.Policy` with its `Analysis`, a validated input record
(`compiler.evaluate.validate_input`), the evaluation date and the named lists.
Output: the result of spec §6 (`outputs` with `reasons`, and `trace`), or an
`EvaluationError` naming the statement, the rule/row/bin/branch and the output.

It is the oracle every faster evaluator is tested against, so it favours
plainness over speed: one method per node type, no caching, no tricks.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from compiler.builtins import BUILTINS
from compiler.check.analysis import Analysis
from compiler.check.check_types import allowed_values, describe_constraint, value_allowed
from compiler.check.fold_constants import show_value
from compiler.evaluate import messages
from compiler.functions import FunctionFailure, call_function
from compiler.values import ValueProblem, check_int, check_number
from dsl import ast
from dsl.diagnostics import Span
from dsl.errors import EvaluationError


class _Context:
    """Where evaluation is, for error messages."""

    def __init__(self, policy: str) -> None:
        self.policy = policy
        self.statement: str | None = None
        self.item: str | None = None
        self.span: Span | None = None

    def fail(self, message: str, span: Span | None = None, output: str | None = None) -> EvaluationError:
        return messages.evaluation_error(
            message, span or self.span, policy=self.policy, statement=self.statement, item=self.item, output=output
        )


def evaluate_reference(
    policy: ast.Policy,
    analysis: Analysis,
    record: dict[str, Any],
    today: _dt.date,
    lists: dict[str, frozenset],
) -> tuple[dict[str, Any], list[str]]:
    """Evaluate one validated record; returns (outputs including `reasons`, trace)."""
    return _Evaluation(policy, analysis, record, today, lists).run()


class _Stop(Exception):
    """`stop`: end the whole policy now, keeping the outputs as they are."""


class _Evaluation:
    def __init__(self, policy, analysis, record, today, lists) -> None:
        self.policy: ast.Policy = policy
        self.analysis: Analysis = analysis
        self.today = today
        self.lists = lists
        self.context = _Context(policy.header.name)
        self.env: dict[str, Any] = dict(record)
        self.scorecard_reasons: dict[str, list[str]] = {}
        self.output_fields = {f.name: f for f in policy.outputs}
        self.outputs: dict[str, Any] = {}
        # Spec §3 masks pii values everywhere outside the evaluation, errors included; a computed value
        # may derive from one, so a policy with pii inputs never echoes values in its errors.
        self.reveal_values = not any(field.pii for field in policy.inputs)
        for field in policy.outputs:
            if field.type.name == "list" and field.type.element is None:
                self.outputs[field.name] = []
            elif field.default is not None:
                self.outputs[field.name] = self._coerce(field, self._eval(field.default))
            else:
                self.outputs[field.name] = None
        self.reasons: list[str] = []
        self.trace: list[str] = []

    def run(self) -> tuple[dict[str, Any], list[str]]:
        try:
            for statement in self.policy.statements:
                self.context.statement = getattr(statement, "name", None)
                self.context.item = None
                self.context.span = statement.span
                getattr(self, "run_" + type(statement).__name__.lower())(statement)
        except _Stop:
            pass
        outputs = dict(self.outputs)
        outputs["reasons"] = list(self.reasons)
        return outputs, self.trace

    # --------------------------------------------------------------- statements

    def run_listdecl(self, statement: ast.ListDecl) -> None:
        if statement.members is not None:
            self.env[statement.name] = frozenset(self._eval(item) for item in statement.members.items)
            return
        if statement.name not in self.lists:
            raise self.context.fail(
                messages.list_not_supplied(statement.name),
                statement.span,
            )
        self.env[statement.name] = self.lists[statement.name]

    def run_let(self, statement: ast.Let) -> None:
        self.env[statement.name] = self._eval(statement.expr)

    def run_rules(self, statement: ast.Rules) -> None:
        fired: list[str] = []
        try:
            for rule in statement.rules:
                self.context.item, self.context.span = f"rule {rule.id}", rule.span
                if self._eval(rule.condition) is True:
                    fired.append(rule.id)
                    self._run_actions(rule.actions)
                    if statement.hit == "first":
                        break
        finally:
            self.trace.append(f"{statement.name}:{','.join(fired) or '-'}")

    def run_table(self, statement: ast.Table) -> None:
        matched: list[int] = []
        for number, row in enumerate(statement.rows, start=1):
            self.context.item, self.context.span = f"row {number}", row.span
            # `-` matches without evaluating its column (as the compiled trees skip it).
            if all(
                isinstance(test, ast.TestAny) or self._test(test, self._eval(column))
                for test, column in zip(row.tests, statement.inputs, strict=True)
            ):
                matched.append(number)
                if statement.hit == "first":
                    break
        self.trace.append(f"{statement.name}:{','.join(str(n) for n in matched) or '-'}")
        if statement.hit == "unique" and len(matched) > 1:
            self.context.item = None
            raise self.context.fail(
                messages.unique_rows_overlap(matched),
                statement.span,
            )
        if statement.hit == "collect":
            records = []
            for number in matched:
                row = statement.rows[number - 1]
                self.context.item, self.context.span = f"row {number}", row.span
                records.append(
                    {column.name: self._eval(expr) for column, expr in zip(statement.outputs, row.results, strict=True)}
                )
            if statement.sort_column is not None:
                records = _sort_records(records, statement.sort_column, statement.sort_descending)
            if statement.limit is not None:
                records = records[: statement.limit]
            self.env[statement.name] = records
            return
        if matched:
            row = statement.rows[matched[0] - 1]
            self.context.item, self.context.span = f"row {matched[0]}", row.span
            for column, expr in zip(statement.outputs, row.results, strict=True):
                self.env[column.name] = self._as_column_type(column.name, self._eval(expr))
        else:
            for column in statement.outputs:
                self.env[column.name] = None

    def run_scorecard(self, statement: ast.Scorecard) -> None:
        total = statement.base
        hits: list[str] = []
        scored: list[tuple[float, int, str]] = []  # (points lost, characteristic position, code)
        for position, characteristic in enumerate(statement.characteristics):
            self.context.item = f"characteristic {position + 1}"
            self.context.span = characteristic.span
            value = self._eval(characteristic.expr)
            hit = 0
            for number, bin_ in enumerate(characteristic.bins, start=1):
                if self._test(bin_.test, value):
                    hit = number
                    total += bin_.points
                    if bin_.reason is not None:
                        best = max(b.points for b in characteristic.bins)
                        scored.append((best - bin_.points, position, bin_.reason))
                    break
            hits.append(str(hit))
        self.trace.append(f"{statement.name}:{','.join(hits)}")
        scored.sort(key=lambda entry: (-entry[0], entry[1]))
        reasons: list[str] = []
        for _, _, code in scored:
            if code not in reasons:
                reasons.append(code)
        symbol_type = self.analysis.symbols[statement.name].type if statement.name in self.analysis.symbols else None
        self.env[statement.name] = float(total) if symbol_type is not None and symbol_type.kind == "number" else total
        self.scorecard_reasons[statement.name] = reasons

    def run_tree(self, statement: ast.Tree) -> None:
        path: list[str] = []
        try:
            level = statement.branches
            while level:
                for number, branch in enumerate(level, start=1):
                    self.context.item = "branch " + ".".join([*path, str(number)])
                    self.context.span = branch.span
                    if branch.condition is None or self._eval(branch.condition) is True:
                        path.append(str(number))
                        nested = [b for b in branch.body if isinstance(b, ast.Branch)]
                        if nested:
                            level = nested
                        else:
                            level = ()
                            self._run_actions(branch.body)
                        break
                else:
                    level = ()
        finally:
            self.trace.append(f"{statement.name}:{'.'.join(path) or '-'}")

    # ------------------------------------------------------------------ actions

    def _run_actions(self, actions) -> None:
        for action in actions:
            if isinstance(action, ast.Assign):
                self._assign(action)
            elif isinstance(action, ast.AddReason):
                self._add_reason(action)
            else:
                raise _Stop()

    def _assign(self, action: ast.Assign) -> None:
        field = self.output_fields[action.target]
        value = self._eval(action.expr)
        if value is None and not field.optional:
            raise self.context.fail(
                messages.missing_required_output(field.name),
                action.span,
                output=field.name,
            )
        value = self._coerce(field, value)
        constraint = allowed_values(field)
        if value is not None and constraint is not None and not value_allowed(constraint, value):
            shown = show_value(value) if self.reveal_values else messages.HIDDEN_VALUE
            raise self.context.fail(
                messages.output_not_allowed(field.name, shown, describe_constraint(constraint)),
                action.span,
                output=field.name,
            )
        self.outputs[field.name] = value
        self.env[field.name] = value

    def _add_reason(self, action: ast.AddReason) -> None:
        value = self._eval(action.expr)
        codes = value if isinstance(value, list) else [value]
        for code in codes:
            if code is None:
                raise self.context.fail(messages.missing_reason_code(), action.span, output="reasons")
            if code not in self.reasons:
                self.reasons.append(code)
        self.env["reasons"] = list(self.reasons)

    @staticmethod
    def _coerce(field: ast.Field, value: Any) -> Any:
        if value is not None and field.type.name == "number" and not isinstance(value, bool):
            return float(value)
        if isinstance(value, list):
            return list(value)
        return value

    # --------------------------------------------------------------- unary tests

    def _test(self, test, value: Any) -> bool:
        if isinstance(test, (ast.TestAny, ast.TestOtherwise)):
            return True
        if isinstance(test, ast.TestMissing):
            return (value is None) != test.negated
        if value is None:
            return False
        if isinstance(test, ast.TestCompare):
            return _compare(test.op, value, self._eval(test.operand)) is True
        if isinstance(test, ast.TestInterval):
            return self._in_interval(value, test.interval) is True
        if isinstance(test, ast.TestSet):
            found = self._in_items(value, test.items.items)
            if found is None:
                return False
            return found != test.negated
        raise TypeError(test)  # pragma: no cover

    # --------------------------------------------------------------- expressions

    def _eval(self, node) -> Any:
        return getattr(self, "eval_" + type(node).__name__.lower())(node)

    def eval_number(self, node: ast.Number):
        return node.value

    def eval_string(self, node: ast.String):
        return node.value

    def eval_bool(self, node: ast.Bool):
        return node.value

    def eval_today(self, node: ast.Today):
        return self.today

    def eval_name(self, node: ast.Name):
        if node.id in self.outputs:
            return self.outputs[node.id]
        if node.id == "reasons":
            return list(self.reasons)
        return self.env.get(node.id)

    def eval_attribute(self, node: ast.Attribute):
        if isinstance(node.value, ast.Name) and node.value.id in self.scorecard_reasons and node.field == "reasons":
            return list(self.scorecard_reasons[node.value.id])
        value = self._eval(node.value)
        if value is None:
            return None
        if isinstance(value, list):
            return [None if item is None else item.get(node.field) for item in value]
        return value.get(node.field)

    def eval_call(self, node: ast.Call):
        builtin = BUILTINS.get(node.func)
        if builtin is None:
            return self._plugin_call(node, self.analysis.functions[node.func])
        args = [self._eval(arg) for arg in node.args]
        if builtin.propagates_missing and any(arg is None for arg in args):
            return None
        try:
            result = builtin.implementation(*args)
        except ValueProblem as exc:
            detail = str(exc) if self.reveal_values else messages.HIDDEN_ARGUMENT
            raise self.context.fail(messages.builtin_failed(node.func, detail), node.span) from None
        return self._as_typed(node, self._checked(result, node.span))

    def _plugin_call(self, node: ast.Call, spec):
        """A plugin function: arguments converted and the result checked by `call_function`, as the kernels do."""
        args = [self._eval(arg) for arg in node.args]
        try:
            return call_function(spec, args, reveal=self.reveal_values)
        except FunctionFailure as exc:
            raise self.context.fail(exc.message, node.span) from None

    def _as_column_type(self, column: str, value):
        """A table column typed `number` holds floats even where a row gives a whole number."""
        symbol = self.analysis.symbols.get(column)
        return _as_declared(symbol.type if symbol is not None else None, value)

    def _as_typed(self, node, value):
        """A whole number where the checker typed the expression `number` is a float (min(0.0, -1) is -1.0),
        so that values, and the messages that show them, do not depend on which argument won."""
        return _as_declared(self.analysis.type_of(node), value)

    def eval_negate(self, node: ast.Negate):
        value = self._eval(node.operand)
        return None if value is None else self._checked(-value, node.span)

    def eval_arith(self, node: ast.Arith):
        left, right = self._eval(node.left), self._eval(node.right)
        if left is None or right is None:
            return None
        if node.op == "+":
            result = left + right
        elif node.op == "-":
            result = left - right
        elif node.op == "*":
            result = left * right
        else:
            if right == 0:
                return None  # spec §5: division by zero gives missing
            result = left / right
        return self._checked(result, node.span)

    def _checked(self, value, span: Span):
        try:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return value
            if isinstance(value, int):
                return check_int(value)
            return check_number(value)
        except ValueProblem as exc:
            raise self.context.fail(str(exc), span) from None

    def eval_compare(self, node: ast.Compare):
        return _compare(node.op, self._eval(node.left), self._eval(node.right))

    def eval_in(self, node: ast.In):
        item = self._eval(node.item)
        if item is None:
            return None
        container = node.container
        if isinstance(container, ast.Interval):
            found = self._in_interval(item, container)
        elif isinstance(container, ast.SetLiteral):
            found = self._in_items(item, container.items)
        else:
            members = self._eval(container)
            if members is None:
                return None
            found = any(_equal(item, member) for member in members) if isinstance(members, list) else (item in members)
        if found is None:
            return None
        return found != node.negated

    def _in_items(self, item, items) -> bool | None:
        values = [self._eval(element) for element in items]
        if any(value is not None and _equal(item, value) for value in values):
            return True
        return None if any(value is None for value in values) else False

    def _in_interval(self, item, interval: ast.Interval) -> bool | None:
        low, high = self._eval(interval.low), self._eval(interval.high)
        if low is None or high is None:
            return None
        above = item >= low if interval.low_closed else item > low
        below = item <= high if interval.high_closed else item < high
        return above and below

    def eval_ismissing(self, node: ast.IsMissing):
        return (self._eval(node.operand) is None) != node.negated

    # `and` / `or` evaluate left to right and stop once the result is known (docs/language.md), which
    # is also what the compiled decision trees do: a false left side of `and` decides it alone.
    def eval_and(self, node: ast.And):
        left = self._eval(node.left)
        if left is False:
            return False
        right = self._eval(node.right)
        if right is False:
            return False
        if left is None or right is None:
            return None
        return True

    def eval_or(self, node: ast.Or):
        left = self._eval(node.left)
        if left is True:
            return True
        right = self._eval(node.right)
        if right is True:
            return True
        if left is None or right is None:
            return None
        return False

    def eval_not(self, node: ast.Not):
        value = self._eval(node.operand)
        return None if value is None else not value

    def eval_ifelse(self, node: ast.IfElse):
        if self._eval(node.condition) is True:
            return self._as_typed(node, self._eval(node.then))
        return self._as_typed(node, self._eval(node.otherwise))


def _as_declared(value_type, value):
    if value_type is not None and value_type.kind == "number" and type(value) is int:
        return float(value)
    return value


def _equal(left, right) -> bool:
    if isinstance(left, bool) != isinstance(right, bool):
        return False
    return left == right


def _compare(op: str, left, right) -> bool | None:
    if left is None or right is None:
        return None
    if op == "==":
        return _equal(left, right)
    if op == "!=":
        return not _equal(left, right)
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    if op == ">":
        return left > right
    return left >= right


def _sort_records(records: list[dict], column: str, descending: bool) -> list[dict]:
    """Stable sort on one column; records whose value is missing go last in either direction."""
    present = [r for r in records if r.get(column) is not None]
    missing = [r for r in records if r.get(column) is None]
    present.sort(key=lambda r: r[column], reverse=descending)
    return present + missing
