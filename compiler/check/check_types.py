"""Pass: type-check every expression, action and table cell; check literals against `in` constraints.

Input: `Analysis` after `resolve_names` (names bound to symbols).
Output: `analysis.types` and `analysis.nullable` for every expression, the
types of lets, scorecards and table results on their symbols,
`analysis.assigned_by_statement`, and diagnostics for type mismatches, bad
calls, lists used outside `in`, and literals outside a field's allowed values.
"""

from __future__ import annotations

import datetime as _dt
import difflib

from compiler import functions
from compiler import types as T
from compiler.builtins import BUILTINS, SignatureError
from compiler.check.analysis import COLLECT_TABLE, INPUT, LIST, OUTPUT, REASONS, SCORECARD, Analysis, Symbol
from compiler.check.fold_constants import NOT_CONSTANT, constant_value, show_value
from compiler.types import Type
from compiler.values import ValueProblem, parse_date
from dsl import ast

_ORDERING = ("<", "<=", ">", ">=")


def check_types(analysis: Analysis) -> None:
    _TypeChecker(analysis).run()


def allowed_values(field: ast.Field | None) -> tuple[str, object] | None:
    """('set', frozenset) or ('range', (low, high, low_closed, high_closed)) for a constrained field."""
    if field is None or field.allowed is None:
        return None
    if isinstance(field.allowed, ast.SetLiteral):
        values = [constant_value(item) for item in field.allowed.items]
        if any(v is NOT_CONSTANT for v in values):
            return None
        return ("set", tuple(values))
    low, high = constant_value(field.allowed.low), constant_value(field.allowed.high)
    if low is NOT_CONSTANT or high is NOT_CONSTANT:
        return None
    return ("range", (low, high, field.allowed.low_closed, field.allowed.high_closed))


def value_allowed(constraint: tuple[str, object], value: object) -> bool:
    kind, spec = constraint
    if kind == "set":
        return any(_same_value(value, member) for member in spec)  # type: ignore[union-attr]
    low, high, low_closed, high_closed = spec  # type: ignore[misc]
    try:
        above = value >= low if low_closed else value > low
        below = value <= high if high_closed else value < high
    except TypeError:
        return True  # a type error is reported elsewhere
    return bool(above and below)


def _same_value(left: object, right: object) -> bool:
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right
    return left == right


def describe_constraint(constraint: tuple[str, object]) -> str:
    kind, spec = constraint
    if kind == "set":
        return "one of " + ", ".join(show_value(v) for v in spec)  # type: ignore[union-attr]
    low, high, low_closed, high_closed = spec  # type: ignore[misc]
    return f"in {'[' if low_closed else '('}{show_value(low)}..{show_value(high)}{']' if high_closed else ')'}"


class _TypeChecker:
    def __init__(self, analysis: Analysis) -> None:
        self.analysis = analysis
        self.statement_index = -1

    def run(self) -> None:
        for field in self.analysis.policy.inputs + self.analysis.policy.outputs:
            self.check_field(field)
        for symbol in self.analysis.symbols.values():
            if symbol.kind in (INPUT, OUTPUT) and symbol.field is not None:
                symbol.type = T.from_ref(symbol.field.type)
                symbol.nullable = symbol.field.optional
            elif symbol.kind == REASONS:
                symbol.type = T.STRING_LIST
                symbol.nullable = False
        for index, statement in enumerate(self.analysis.policy.statements):
            self.statement_index = index
            self.analysis.assigned_by_statement[index] = set()
            getattr(self, "statement_" + type(statement).__name__.lower())(statement)

    # ------------------------------------------------------------ declarations

    def check_field(self, field: ast.Field) -> None:
        field_type = T.from_ref(field.type)
        if field.allowed is not None:
            items = (
                field.allowed.items
                if isinstance(field.allowed, ast.SetLiteral)
                else (field.allowed.low, field.allowed.high)
            )
            for item in items:
                value = constant_value(item)
                if value is NOT_CONSTANT:
                    self.analysis.error("not_constant", "allowed values must be literals", item.span)
                    continue
                self.expect_literal_type(
                    value,
                    field_type if field_type.kind != "list" else field_type.element,
                    item,
                    f"the allowed values of '{field.name}'",
                )
        constraint = allowed_values(field)
        if constraint is not None and constraint[0] == "range" and _empty_range(field.type.name, constraint[1]):
            self.analysis.error(
                "empty_range", f"the range of '{field.name}' allows no value at all", field.allowed.span
            )
        if field.default is not None:
            value = constant_value(field.default)
            if value is NOT_CONSTANT:
                self.analysis.error("not_constant", "a default must be a literal value", field.default.span)
                return
            self.expect_literal_type(value, field_type, field.default, f"the default of '{field.name}'")
            constraint = allowed_values(field)
            if constraint and not value_allowed(constraint, value):
                self.analysis.error(
                    "value_not_allowed",
                    f"the default {show_value(value)} is not an allowed value of '{field.name}' "
                    f"({describe_constraint(constraint)})",
                    field.default.span,
                )

    def expect_literal_type(self, value: object, wanted: Type | None, node, what: str) -> None:
        if wanted is None:
            return
        actual = _literal_type(value)
        if not T.assignable(actual, wanted):
            self.analysis.error(
                "type_mismatch", f"{what} must be {_a(wanted)}, but {show_value(value)} is {_a(actual)}", node.span
            )

    # -------------------------------------------------------------- statements

    def statement_listdecl(self, statement: ast.ListDecl) -> None:
        symbol = self.analysis.symbols.get(statement.name)
        element = T.SCALARS[statement.element_type]
        if statement.element_type not in ("string", "int", "number"):
            self.analysis.error(
                "bad_list_type",
                f"a list holds strings, ints or numbers, not {statement.element_type}",
                statement.name_span,
            )
        if statement.members is not None:
            for item in statement.members.items:
                value = constant_value(item)
                if value is NOT_CONSTANT:
                    self.analysis.error("not_constant", "list members must be literals", item.span)
                else:
                    self.expect_literal_type(value, element, item, f"a member of list '{statement.name}'")
        if symbol is not None and symbol.node is statement:
            symbol.type = Type("set", element)
            symbol.nullable = False

    def statement_let(self, statement: ast.Let) -> None:
        value_type, nullable = self.expr(statement.expr)
        symbol = self.analysis.symbols.get(statement.name)
        if symbol is not None and symbol.node is statement:
            symbol.type, symbol.nullable = value_type, nullable

    def statement_rules(self, statement: ast.Rules) -> None:
        for rule in statement.rules:
            self.condition(rule.condition, f"the condition of rule {rule.id}")
            self.actions(rule.actions)

    def statement_tree(self, statement: ast.Tree) -> None:
        self.branches(statement.branches)

    def branches(self, branches) -> None:
        for branch in branches:
            if branch.condition is not None:
                self.condition(branch.condition, "a tree branch condition")
            self.branches([b for b in branch.body if isinstance(b, ast.Branch)])
            self.actions([a for a in branch.body if not isinstance(a, ast.Branch)])

    def statement_table(self, statement: ast.Table) -> None:
        column_types = [self.expr(expr) for expr in statement.inputs]
        result_types: list[Type | None] = [None] * len(statement.outputs)
        result_nullable = [False] * len(statement.outputs)
        for row in statement.rows:
            for position, test in enumerate(row.tests):
                if position < len(statement.inputs):
                    self.unary_test(test, column_types[position][0], statement.inputs[position])
            for position, expr in enumerate(row.results):
                value_type, nullable = self.expr(expr)
                if position >= len(result_types):
                    continue
                result_nullable[position] |= nullable
                previous = result_types[position]
                if previous is None:
                    result_types[position] = value_type
                    continue
                unified = T.unify(previous, value_type)
                if unified is None:
                    column = statement.outputs[position].name
                    self.analysis.error(
                        "type_mismatch",
                        f"column '{column}' of table '{statement.name}' mixes {previous} and {value_type} values",
                        expr.span,
                    )
                else:
                    result_types[position] = unified
        fields = tuple((column.name, result_types[i] or T.ERROR) for i, column in enumerate(statement.outputs))
        if statement.hit == "collect":
            symbol = self.analysis.symbols.get(statement.name)
            if symbol is not None and symbol.kind == COLLECT_TABLE:
                symbol.type = Type("list", Type("record", fields=fields))
                symbol.nullable = False
            if statement.sort_column is not None:
                sort_type = dict(fields).get(statement.sort_column)
                if sort_type is not None and sort_type.kind not in ("int", "number", "date", "string", "error"):
                    self.analysis.error(
                        "bad_sort",
                        f"cannot sort by '{statement.sort_column}': it holds {sort_type} values",
                        statement.sort_span,
                    )
            return
        for position, column in enumerate(statement.outputs):
            symbol = self.analysis.symbols.get(column.name)
            if symbol is not None and symbol.node is statement:
                symbol.type = result_types[position] or T.ERROR
                # No matching row leaves every column missing.
                symbol.nullable = True

    def statement_scorecard(self, statement: ast.Scorecard) -> None:
        is_int = isinstance(statement.base, int)
        for characteristic in statement.characteristics:
            value_type, _ = self.expr(characteristic.expr)
            for bin_ in characteristic.bins:
                self.unary_test(bin_.test, value_type, characteristic.expr)
                is_int = is_int and isinstance(bin_.points, int)
        symbol = self.analysis.symbols.get(statement.name)
        if symbol is not None and symbol.kind == SCORECARD:
            symbol.type = T.INT if is_int else T.NUMBER
            symbol.nullable = False

    # ----------------------------------------------------------------- actions

    def actions(self, actions) -> None:
        for action in actions:
            if isinstance(action, ast.Assign):
                self.assign(action)
            elif isinstance(action, ast.AddReason):
                value_type, _ = self.expr(action.expr)
                if value_type.kind not in ("string", "error") and value_type != T.STRING_LIST:
                    self.analysis.error(
                        "type_mismatch",
                        f"reason takes a string or a list of strings, not {value_type}",
                        action.expr.span,
                    )

    def assign(self, action: ast.Assign) -> None:
        value_type, _ = self.expr(action.expr)
        symbol = self.analysis.symbols.get(action.target)
        if symbol is None or symbol.kind != OUTPUT or symbol.type is None:
            return
        self.analysis.assigned_by_statement[self.statement_index].add(action.target)
        if not T.assignable(value_type, symbol.type):
            self.analysis.error(
                "type_mismatch",
                f"output '{action.target}' is {symbol.type}; cannot assign {_a(value_type)} value",
                action.expr.span,
            )
            return
        self.check_literal(symbol, action.expr)
        if symbol.type == T.EMPTY_RECORD_LIST and value_type.kind == "list" and value_type.element is not None:
            # A bare `list` output takes the record fields of the first collect table assigned to it,
            # so later statements can read e.g. `offers.product`.
            if value_type.element.kind == "record" and value_type.element.fields:
                symbol.type = value_type

    def condition(self, expr, what: str) -> None:
        value_type, _ = self.expr(expr)
        if value_type.kind not in ("bool", "error"):
            self.analysis.error("type_mismatch", f"{what} must be true or false, not {_a(value_type)}", expr.span)

    # ------------------------------------------------------------- unary tests

    def unary_test(self, test, column_type: Type, column_expr) -> None:
        if isinstance(test, ast.TestCompare):
            operand_type, _ = self.expr(test.operand)
            if not T.comparable(column_type, operand_type, test.op):
                self.analysis.error("type_mismatch", _compare_message(test.op, column_type, operand_type), test.span)
            else:
                self.check_literal(self._constrained_symbol(column_expr), test.operand)
        elif isinstance(test, ast.TestInterval):
            self.interval(test.interval, column_type)
        elif isinstance(test, ast.TestSet):
            for item in test.items.items:
                item_type, _ = self.expr(item)
                if not T.comparable(column_type, item_type, "=="):
                    self.analysis.error("type_mismatch", _compare_message("==", column_type, item_type), item.span)
                else:
                    self.check_literal(self._constrained_symbol(column_expr), item)

    def interval(self, interval: ast.Interval, item_type: Type) -> None:
        for bound in (interval.low, interval.high):
            bound_type, _ = self.expr(bound)
            if not T.comparable(item_type, bound_type, "<"):
                self.analysis.error(
                    "type_mismatch",
                    f"an interval over {item_type} values cannot have {_a(bound_type)} bound",
                    bound.span,
                )

    # ------------------------------------------------------------- expressions

    def expr(self, node) -> tuple[Type, bool]:
        value_type, nullable = getattr(self, "expr_" + type(node).__name__.lower())(node)
        self.analysis.types[id(node)] = value_type
        self.analysis.nullable[id(node)] = nullable
        return value_type, nullable

    def expr_number(self, node: ast.Number):
        return (T.INT if isinstance(node.value, int) else T.NUMBER), False

    def expr_string(self, node: ast.String):
        return T.STRING, False

    def expr_bool(self, node: ast.Bool):
        return T.BOOL, False

    def expr_today(self, node: ast.Today):
        return T.DATE, False

    def expr_name(self, node: ast.Name):
        symbol = self.analysis.symbol_of(node)
        if symbol is None:
            return T.ERROR, True
        if symbol.kind == LIST:
            self.analysis.error("list_outside_in", f"list '{node.id}' can only be used after in / not in", node.span)
            return T.ERROR, False
        if symbol.type is None:
            return T.ERROR, True
        return symbol.type, symbol.nullable

    def expr_attribute(self, node: ast.Attribute):
        if isinstance(node.value, ast.Name):
            symbol = self.analysis.symbol_of(node.value)
            if symbol is not None and symbol.kind == SCORECARD:
                self.expr(node.value)
                if node.field == "reasons":
                    return T.STRING_LIST, False
                self.analysis.error(
                    "unknown_field", f"a scorecard has only the field reasons, not '{node.field}'", node.span
                )
                return T.ERROR, False
        value_type, nullable = self.expr(node.value)
        if value_type.is_error:
            return T.ERROR, nullable
        record = value_type.element if value_type.kind == "list" else value_type
        if record is not None and record.kind == "record":
            field_type = record.field(node.field)
            if field_type is None:
                names = [name for name, _ in record.fields]
                close = difflib.get_close_matches(node.field, names, n=1, cutoff=0.75)
                hint = f"; did you mean '{close[0]}'?" if close else f" (its fields: {', '.join(names)})"
                self.analysis.error("unknown_field", f"no field '{node.field}'{hint}", node.span)
                return T.ERROR, nullable
            if value_type.kind == "list":
                return Type("list", field_type), nullable
            return field_type, True
        self.analysis.error("unknown_field", f"{value_type} values have no field '{node.field}'", node.span)
        return T.ERROR, nullable

    def expr_call(self, node: ast.Call):
        arg_results = [self.expr(arg) for arg in node.args]
        builtin = BUILTINS.get(node.func)
        if builtin is None and node.func in self.analysis.functions:
            return self.plugin_call(node, self.analysis.functions[node.func], [t for t, _ in arg_results])
        if builtin is None:
            known = [*BUILTINS, *self.analysis.functions]
            close = difflib.get_close_matches(node.func, known, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else ""
            self.analysis.error("unknown_function", f"unknown function '{node.func}'{hint}", node.span)
            return T.ERROR, True
        try:
            result = builtin.result_type([t for t, _ in arg_results])
        except SignatureError as exc:
            self.analysis.error("bad_call", f"{node.func}: {exc}", node.span)
            return T.ERROR, True
        if node.func == "date" and node.args:
            text = constant_value(node.args[0])
            if isinstance(text, str):
                try:
                    parse_date(text)
                except ValueProblem as exc:
                    self.analysis.error("bad_date", str(exc), node.args[0].span)
        nullables = [n for _, n in arg_results]
        if builtin.propagates_missing:
            return result, any(nullables)
        return result, all(nullables)

    def plugin_call(self, node: ast.Call, spec, arg_types: list[Type]):
        """A plugin function's call, checked against its declared signature: a wrong count at the call, a
        wrong type at the argument. Its result may be missing whatever the arguments (the plugin may say so)."""
        self.analysis.functions_used.setdefault(spec.name, spec)
        whole, by_argument = functions.check_call(spec, arg_types)
        if whole is not None:
            self.analysis.error("bad_call", whole, node.span)
            return T.ERROR, True
        for index, problem in by_argument:
            self.analysis.error("bad_call", problem, node.args[index].span)
        return (T.ERROR if by_argument else functions.result_type(spec)), True

    def expr_negate(self, node: ast.Negate):
        value_type, nullable = self.expr(node.operand)
        if not (value_type.is_numeric or value_type.is_error):
            self.analysis.error("type_mismatch", f"cannot negate {_a(value_type)} value", node.operand.span)
            return T.ERROR, nullable
        return value_type, nullable

    def expr_arith(self, node: ast.Arith):
        (left, left_null), (right, right_null) = self.expr(node.left), self.expr(node.right)
        if left.is_error or right.is_error:
            return T.ERROR, True
        if not (left.is_numeric and right.is_numeric):
            offending = node.left if not left.is_numeric else node.right
            self.analysis.error(
                "type_mismatch",
                f'"{node.op}" works on numbers; here it has {_a(left)} and {_a(right)} value',
                offending.span,
            )
            return T.ERROR, True
        nullable = left_null or right_null
        if node.op == "/":
            return T.NUMBER, nullable or self._may_be_zero(node.right)
        return (T.INT if left.kind == right.kind == "int" else T.NUMBER), nullable

    def expr_compare(self, node: ast.Compare):
        (left, left_null), (right, right_null) = self.expr(node.left), self.expr(node.right)
        if not T.comparable(left, right, node.op):
            # Blame the right operand: in `channel == 5` or `name < "m"` it is what does not fit.
            self.analysis.error("type_mismatch", _compare_message(node.op, left, right), node.right.span)
            return T.BOOL, True
        if node.op in ("==", "!="):
            self.check_literal(self._constrained_symbol(node.left), node.right)
            self.check_literal(self._constrained_symbol(node.right), node.left)
        return T.BOOL, left_null or right_null

    def expr_in(self, node: ast.In):
        item_type, item_null = self.expr(node.item)
        container = node.container
        if isinstance(container, ast.Interval):
            self.interval(container, item_type)
            if not (item_type.is_numeric or item_type.kind in ("date", "error")):
                self.analysis.error(
                    "type_mismatch",
                    f"only numbers and dates can be in an interval, not {_a(item_type)} value",
                    node.item.span,
                )
            return T.BOOL, item_null
        if isinstance(container, ast.SetLiteral):
            for element in container.items:
                element_type, _ = self.expr(element)
                if not T.comparable(item_type, element_type, "=="):
                    self.analysis.error("type_mismatch", _compare_message("==", item_type, element_type), element.span)
                else:
                    self.check_literal(self._constrained_symbol(node.item), element)
            return T.BOOL, item_null
        if isinstance(container, ast.Name):
            symbol = self.analysis.symbol_of(container)
            if symbol is not None and symbol.kind == LIST:
                self.analysis.types[id(container)] = symbol.type or T.ERROR
                self.analysis.nullable[id(container)] = False
                element = symbol.type.element if symbol.type else None
                if element is not None and not T.comparable(item_type, element, "=="):
                    self.analysis.error(
                        "type_mismatch",
                        f"list '{container.id}' holds {element} values, not {item_type}",
                        node.item.span,
                    )
                return T.BOOL, item_null
        container_type, container_null = self.expr(container)
        if container_type.is_error:
            return T.BOOL, True
        if container_type.kind != "list" or container_type.element is None or (container_type.element.kind == "record"):
            self.analysis.error(
                "type_mismatch",
                f"in needs a list, a set {{...}} or an interval [a..b] on its right, not {_a(container_type)} value",
                container.span,
            )
            return T.BOOL, True
        if not T.comparable(item_type, container_type.element, "=="):
            self.analysis.error(
                "type_mismatch",
                f"a list of {container_type.element} values cannot contain {_a(item_type)} value",
                node.item.span,
            )
        return T.BOOL, item_null or container_null

    def expr_ismissing(self, node: ast.IsMissing):
        self.expr(node.operand)
        return T.BOOL, False

    def _logic(self, node, *operands):
        nullable = False
        for operand in operands:
            value_type, operand_null = self.expr(operand)
            nullable |= operand_null
            if value_type.kind not in ("bool", "error"):
                word = {ast.And: "and", ast.Or: "or", ast.Not: "not"}[type(node)]
                self.analysis.error(
                    "type_mismatch", f'"{word}" needs true/false values, not {_a(value_type)} value', operand.span
                )
        return T.BOOL, nullable

    def expr_and(self, node: ast.And):
        return self._logic(node, node.left, node.right)

    def expr_or(self, node: ast.Or):
        return self._logic(node, node.left, node.right)

    def expr_not(self, node: ast.Not):
        return self._logic(node, node.operand)

    def expr_ifelse(self, node: ast.IfElse):
        self.condition(node.condition, "the condition of if")
        (then_type, then_null), (else_type, else_null) = self.expr(node.then), self.expr(node.otherwise)
        unified = T.unify(then_type, else_type)
        if unified is None:
            self.analysis.error(
                "type_mismatch",
                f"the two branches of if give different types: {then_type} and {else_type}",
                node.span,
            )
            return T.ERROR, True
        return unified, then_null or else_null

    def expr_setliteral(self, node: ast.SetLiteral):  # only reachable in error cases
        self.analysis.error("misplaced_set", "a set {...} can only follow in / not in", node.span)
        return T.ERROR, False

    def expr_interval(self, node: ast.Interval):  # only reachable in error cases
        self.analysis.error("misplaced_interval", "an interval can only follow in / not in", node.span)
        return T.ERROR, False

    def _may_be_zero(self, divisor) -> bool:
        """Whether a divisor can be 0 (division by zero gives missing); a declared range can rule it out."""
        value = constant_value(divisor)
        if value is not NOT_CONSTANT:
            return value == 0
        symbol = self._constrained_symbol(divisor)
        constraint = allowed_values(symbol.field) if symbol is not None else None
        return constraint is None or value_allowed(constraint, 0)

    # --------------------------------------------------------------- literals

    def _constrained_symbol(self, expr) -> Symbol | None:
        if isinstance(expr, ast.Name):
            symbol = self.analysis.symbol_of(expr)
            if symbol is not None and symbol.kind in (INPUT, OUTPUT):
                return symbol
        return None

    def check_literal(self, symbol: Symbol | None, literal_expr) -> None:
        """A literal compared with or assigned to a constrained field must be one of its allowed values."""
        if symbol is None:
            return
        constraint = allowed_values(symbol.field)
        if constraint is None:
            return
        value = constant_value(literal_expr)
        if value is NOT_CONSTANT:
            return
        if not value_allowed(constraint, value):
            self.analysis.error(
                "value_not_allowed",
                f"{show_value(value)} is not a possible value of {symbol.kind} '{symbol.name}' "
                f"({describe_constraint(constraint)})",
                literal_expr.span,
            )


def _empty_range(type_name: str, spec) -> bool:
    from compiler.check.domains import ValueSet  # the domain algebra is only needed for this one check

    low, high, low_closed, high_closed = spec
    if isinstance(low, _dt.date) and isinstance(high, _dt.date):
        low, high = low.toordinal(), high.toordinal()
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
        return False
    kind = "int" if type_name in ("int", "date") else "num"
    return ValueSet.numeric(kind, [(low, low_closed, high, high_closed)]).is_empty()


def _literal_type(value: object) -> Type:
    if isinstance(value, bool):
        return T.BOOL
    if isinstance(value, int):
        return T.INT
    if isinstance(value, float):
        return T.NUMBER
    if isinstance(value, str):
        return T.STRING
    return T.DATE


def _a(value_type: Type) -> str:
    text = str(value_type)
    return ("an " if text[:1] in "aeiou" else "a ") + text


def _compare_message(op: str, left: Type, right: Type) -> str:
    if left.kind == right.kind and op in _ORDERING:
        return f'{left} values can only be compared with == and !=, not "{op}"'
    return f'cannot compare {_a(left)} value with {_a(right)} value using "{op}"'
