"""Lowering: a checked AST -> decision trees, instruction programs and actions, as plain lists.

Input: `ast.Policy` and its `Analysis` (types, bindings). Output: `Lowered`,
whose lists `compiler.lower.arrays.compile_arrays` turns into the flat arrays the
evaluators run.

- Every named value gets a *slot* (a float64 and a missing flag at run time):
  strings are interned ids, dates day ordinals, bools 0/1, lists and records
  handles to Python objects.
- Expressions become *programs*: (op, arg) instructions on a value stack, each
  instruction with the span of the AST node it came from.
- Each `rules`, `table`, `scorecard` and `tree` statement becomes one or more
  decision *trees* (DAGs: equal subtrees are built once) whose test nodes run
  a small program giving true, false or missing and go to the matching child;
  `and`, `or` and `not` become branching, not instructions, with the
  three-valued logic of spec §5 built into the edges.
- Leaves carry what the trace reports (rule index, row, bin, path) and the
  actions to run.

The evaluation order of tests and sub-expressions is the reference
interpreter's, so errors (an overflow, a bad date) surface identically.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from compiler.check.analysis import (
    COLLECT_TABLE,
    INPUT,
    LET,
    OUTPUT,
    REASONS,
    SCORECARD,
    TABLE_COLUMN,
    Analysis,
)
from compiler.check.check_types import allowed_values, describe_constraint
from compiler.check.fold_constants import NOT_CONSTANT, constant_value
from compiler.lower import opcodes as O
from compiler.types import Type
from dsl import ast
from dsl.diagnostics import NO_SPAN, Span
from dsl.errors import InternalCompilerError

_COMPARE_OPS = {"==": O.OP_EQ, "!=": O.OP_NE, "<": O.OP_LT, "<=": O.OP_LE, ">": O.OP_GT, ">=": O.OP_GE}
_NATIVE_CALLS = {
    "abs": O.OP_ABS,
    "floor": O.OP_FLOOR,
    "ceil": O.OP_CEIL,
    "clamp": O.OP_CLAMP,
    "days_between": O.OP_DAYS_BETWEEN,
    "years_between": O.OP_YEARS_BETWEEN,
}
_ESCAPED_CALLS = ("round", "len", "lower", "upper", "contains", "starts_with", "top", "date")


def type_code(value_type: Type | None) -> int:
    kind = value_type.kind if value_type is not None else "error"
    return {
        "int": O.T_INT,
        "number": O.T_NUM,
        "bool": O.T_BOOL,
        "string": O.T_STR,
        "date": O.T_DATE,
    }.get(kind, O.T_OBJ)


@dataclass
class Escape:
    """An instruction that needs Python objects (strings' text, lists, records)."""

    name: str
    arg_types: tuple[int, ...]
    result_type: int
    detail: str = ""  # a list name, a field name


@dataclass
class Lowered:
    name: str
    strings: list[str] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    slot_names: list[str] = field(default_factory=list)
    slot_types: list[int] = field(default_factory=list)
    today_slot: int = 0
    code_op: list[int] = field(default_factory=list)
    code_arg: list[float] = field(default_factory=list)
    code_span: list[int] = field(default_factory=list)
    program_start: list[int] = field(default_factory=lambda: [0])
    sets: list[tuple[float, ...]] = field(default_factory=list)
    ranges: list[tuple[float, float, bool, bool]] = field(default_factory=list)
    escapes: list[Escape] = field(default_factory=list)
    # Tree nodes (in creation order; `compile_arrays` renumbers them parents-first).
    node_program: list[int] = field(default_factory=list)
    node_true: list[int] = field(default_factory=list)
    node_false: list[int] = field(default_factory=list)
    node_missing: list[int] = field(default_factory=list)
    node_leaf: list[int] = field(default_factory=list)
    node_item: list[int] = field(default_factory=list)  # string id of "rule R01", "row 3", ...
    # Leaves.
    leaf_index: list[int] = field(default_factory=list)  # rule position / row / bin number; -1 = nothing
    leaf_label: list[int] = field(default_factory=list)  # string id of what the trace shows
    leaf_action_start: list[int] = field(default_factory=list)
    leaf_action_end: list[int] = field(default_factory=list)
    leaf_points: list[float] = field(default_factory=list)
    leaf_reason: list[int] = field(default_factory=list)  # string id, or -1
    leaf_item: list[int] = field(default_factory=list)
    leaf_span: list[int] = field(default_factory=list)  # the rule, row, bin or branch the leaf stands for
    # Actions.
    action_kind: list[int] = field(default_factory=list)
    action_slot: list[int] = field(default_factory=list)  # A_ASSIGN / A_SET target; A_FIELD: column string id
    action_program: list[int] = field(default_factory=list)
    action_output: list[int] = field(default_factory=list)  # output index for A_ASSIGN, else -1
    action_span: list[int] = field(default_factory=list)
    action_type: list[int] = field(default_factory=list)  # value type of the action's program
    # Trees: one per rule (all), row (unique/collect), characteristic, or one per statement.
    tree_root: list[int] = field(default_factory=list)
    tree_program: list[int] = field(default_factory=list)  # computed into tree_slot first (characteristics)
    tree_slot: list[int] = field(default_factory=list)
    tree_best: list[float] = field(default_factory=list)  # a characteristic's highest points
    tree_item: list[int] = field(default_factory=list)
    # Statements.
    stmt_kind: list[int] = field(default_factory=list)
    stmt_name: list[int] = field(default_factory=list)
    stmt_slot: list[int] = field(default_factory=list)
    stmt_slot2: list[int] = field(default_factory=list)  # a scorecard's reasons slot
    stmt_program: list[int] = field(default_factory=list)
    stmt_tree_start: list[int] = field(default_factory=list)
    stmt_tree_end: list[int] = field(default_factory=list)
    stmt_span: list[int] = field(default_factory=list)
    stmt_base: list[float] = field(default_factory=list)  # scorecard base; collect limit
    stmt_sort: list[int] = field(default_factory=list)  # collect sort column string id, or -1
    stmt_descending: list[int] = field(default_factory=list)
    stmt_columns: list[tuple[int, ...]] = field(default_factory=list)  # first/unique table column slots
    # Inputs and outputs.
    input_names: list[str] = field(default_factory=list)
    input_slots: list[int] = field(default_factory=list)
    output_names: list[str] = field(default_factory=list)
    output_slots: list[int] = field(default_factory=list)
    output_optional: list[int] = field(default_factory=list)
    output_default: list[float] = field(default_factory=list)
    output_default_missing: list[int] = field(default_factory=list)
    output_allowed_set: list[int] = field(default_factory=list)  # set index or -1
    output_allowed_range: list[int] = field(default_factory=list)  # range index or -1
    output_constraint_text: list[str] = field(default_factory=list)  # "one of ...", for error messages
    reveal_values: bool = True


def lower(policy: ast.Policy, analysis: Analysis) -> Lowered:
    """Lower a checked policy; raises InternalCompilerError on anything the checker should have stopped."""
    return _Lowering(policy, analysis).run()


class _Lowering:
    def __init__(self, policy: ast.Policy, analysis: Analysis) -> None:
        self.policy = policy
        self.analysis = analysis
        self.out = Lowered(policy.name)
        self.string_ids: dict[str, int] = {}
        self.span_ids: dict[Span, int] = {}
        self.slot_of: dict[str, int] = {}
        self.reasons_slot_of: dict[str, int] = {}
        self.memo: dict[tuple, int] = {}
        self.program_memo: dict[tuple, int] = {}
        self.current_item = -1

    # ---------------------------------------------------------------- tables

    def string(self, text: str) -> int:
        if text not in self.string_ids:
            self.string_ids[text] = len(self.out.strings)
            self.out.strings.append(text)
        return self.string_ids[text]

    def span(self, span: Span) -> int:
        if span not in self.span_ids:
            self.span_ids[span] = len(self.out.spans)
            self.out.spans.append(span)
        return self.span_ids[span]

    def slot(self, name: str, type_: int) -> int:
        self.out.slot_names.append(name)
        self.out.slot_types.append(type_)
        return len(self.out.slot_names) - 1

    def encode_constant(self, value, type_: int) -> float:
        if type_ == O.T_STR:
            return float(self.string(value))
        if type_ == O.T_DATE:
            return float(value.toordinal())
        if type_ == O.T_BOOL:
            return 1.0 if value else 0.0
        return float(value)

    def add_set(self, values: list[float]) -> int:
        self.out.sets.append(tuple(sorted(set(values))))
        return len(self.out.sets) - 1

    def add_range(self, low: float, high: float, low_closed: bool, high_closed: bool) -> int:
        self.out.ranges.append((low, high, low_closed, high_closed))
        return len(self.out.ranges) - 1

    # --------------------------------------------------------------- program

    def program(self, emit) -> int:
        """Run `emit(code)` to fill a new program's instructions; returns the program index."""
        code: list[tuple[int, float, int]] = []
        emit(code)
        key = tuple(code)
        if key in self.program_memo:
            return self.program_memo[key]
        for op, arg, span_id in code:
            self.out.code_op.append(op)
            self.out.code_arg.append(arg)
            self.out.code_span.append(span_id)
        self.out.program_start.append(len(self.out.code_op))
        index = len(self.out.program_start) - 2
        self.program_memo[key] = index
        return index

    def escape(self, name: str, arg_types: tuple[int, ...], result_type: int, detail: str = "") -> int:
        for index, existing in enumerate(self.out.escapes):
            if (existing.name, existing.arg_types, existing.result_type, existing.detail) == (
                name,
                arg_types,
                result_type,
                detail,
            ):
                return index
        self.out.escapes.append(Escape(name, arg_types, result_type, detail))
        return len(self.out.escapes) - 1

    # ------------------------------------------------------------------ run

    def run(self) -> Lowered:
        out = self.out
        out.reveal_values = not any(f.pii for f in self.policy.inputs)
        out.today_slot = self.slot("today", O.T_DATE)
        for field_ in self.policy.inputs:
            slot = self.slot(field_.name, type_code(self.analysis.symbols[field_.name].type))
            self.slot_of[field_.name] = slot
            out.input_names.append(field_.name)
            out.input_slots.append(slot)
        for field_ in self.policy.outputs:
            self.lower_output(field_)
        for statement in self.policy.statements:
            getattr(self, "statement_" + type(statement).__name__.lower())(statement)
        return out

    def lower_output(self, field_: ast.Field) -> None:
        out = self.out
        symbol = self.analysis.symbols[field_.name]
        type_ = type_code(symbol.type)
        slot = self.slot(field_.name, type_)
        self.slot_of[field_.name] = slot
        out.output_names.append(field_.name)
        out.output_slots.append(slot)
        out.output_optional.append(int(field_.optional))
        if field_.default is not None:
            out.output_default.append(self.encode_constant(constant_value(field_.default), type_))
            out.output_default_missing.append(0)
        else:
            # 2: a bare `list` output starts as the empty list; 1: an optional output starts missing.
            out.output_default.append(0.0)
            out.output_default_missing.append(2 if field_.type.name == "list" and field_.type.element is None else 1)
        constraint = allowed_values(field_)
        allowed_set = allowed_range = -1
        if constraint is not None:
            shape, spec = constraint
            if shape == "set":
                allowed_set = self.add_set([self.encode_constant(v, type_) for v in spec])
            else:
                low, high, low_closed, high_closed = spec
                allowed_range = self.add_range(
                    self.encode_constant(low, type_), self.encode_constant(high, type_), low_closed, high_closed
                )
        out.output_allowed_set.append(allowed_set)
        out.output_allowed_range.append(allowed_range)
        out.output_constraint_text.append(describe_constraint(constraint) if constraint is not None else "")

    # ------------------------------------------------------------- statements

    def begin_statement(self, kind: int, name: str, span: Span) -> int:
        out = self.out
        out.stmt_kind.append(kind)
        out.stmt_name.append(self.string(name))
        out.stmt_slot.append(-1)
        out.stmt_slot2.append(-1)
        out.stmt_program.append(-1)
        out.stmt_tree_start.append(len(out.tree_root))
        out.stmt_tree_end.append(len(out.tree_root))
        out.stmt_span.append(self.span(span))
        out.stmt_base.append(0.0)
        out.stmt_sort.append(-1)
        out.stmt_descending.append(0)
        out.stmt_columns.append(())
        return len(out.stmt_kind) - 1

    def end_statement(self, index: int) -> None:
        self.out.stmt_tree_end[index] = len(self.out.tree_root)

    def add_tree(self, root: int, program: int = -1, slot: int = -1, best: float = 0.0, item: int = -1) -> None:
        out = self.out
        out.tree_root.append(root)
        out.tree_program.append(program)
        out.tree_slot.append(slot)
        out.tree_best.append(best)
        out.tree_item.append(item)

    def statement_listdecl(self, statement: ast.ListDecl) -> None:
        index = self.begin_statement(O.S_LIST, statement.name, statement.span)
        self.end_statement(index)

    def statement_let(self, statement: ast.Let) -> None:
        index = self.begin_statement(O.S_LET, statement.name, statement.span)
        self.current_item = -1
        slot = self.slot(statement.name, type_code(self.analysis.symbols[statement.name].type))
        self.out.stmt_slot[index] = slot
        self.out.stmt_program[index] = self.expr_program(statement.expr)
        self.slot_of[statement.name] = slot
        self.end_statement(index)

    def statement_rules(self, statement: ast.Rules) -> None:
        kind = O.S_RULES_FIRST if statement.hit == "first" else O.S_RULES_ALL
        index = self.begin_statement(kind, statement.name, statement.span)
        if kind == O.S_RULES_FIRST:
            target = self.leaf(-1, "-", (), -1, statement.span)
            for position in reversed(range(len(statement.rules))):
                rule = statement.rules[position]
                item = self.string(f"rule {rule.id}")
                fire = self.leaf(position, rule.id, rule.actions, item, rule.span)
                self.current_item = item
                target = self.condition(rule.condition, fire, target, target)
            self.add_tree(target)
        else:
            for position, rule in enumerate(statement.rules):
                item = self.string(f"rule {rule.id}")
                skip = self.leaf(-1, "-", (), item, rule.span)
                fire = self.leaf(position, rule.id, rule.actions, item, rule.span)
                self.current_item = item
                self.add_tree(self.condition(rule.condition, fire, skip, skip), item=item)
        self.end_statement(index)

    def statement_table(self, statement: ast.Table) -> None:
        kind = {"first": O.S_TABLE_FIRST, "unique": O.S_TABLE_UNIQUE, "collect": O.S_TABLE_COLLECT}[statement.hit]
        index = self.begin_statement(kind, statement.name, statement.span)
        if kind == O.S_TABLE_COLLECT:
            slot = self.slot(statement.name, O.T_OBJ)
            self.slot_of[statement.name] = slot
            self.out.stmt_slot[index] = slot
            self.out.stmt_sort[index] = self.string(statement.sort_column) if statement.sort_column else -1
            self.out.stmt_descending[index] = int(statement.sort_descending)
            self.out.stmt_base[index] = float(statement.limit) if statement.limit is not None else -1.0
        else:
            columns = []
            for column in statement.outputs:
                slot = self.slot(column.name, type_code(self.analysis.symbols[column.name].type))
                columns.append(slot)
            self.out.stmt_columns[index] = tuple(columns)
        none = self.leaf(-1, "-", (), -1, statement.span)
        if kind == O.S_TABLE_FIRST:
            target = none
            for number in reversed(range(1, len(statement.rows) + 1)):
                target = self.row_chain(statement, number, target, self.out.stmt_columns[index])
            self.add_tree(target)
        else:
            for number in range(1, len(statement.rows) + 1):
                item = self.string(f"row {number}")
                self.add_tree(self.row_chain(statement, number, none, self.out.stmt_columns[index]), item=item)
        if kind != O.S_TABLE_COLLECT:
            for column, slot in zip(statement.outputs, self.out.stmt_columns[index]):
                self.slot_of[column.name] = slot
        self.end_statement(index)

    def row_chain(self, statement: ast.Table, number: int, on_fail: int, column_slots) -> int:
        row = statement.rows[number - 1]
        item = self.string(f"row {number}")
        self.current_item = item
        if statement.hit == "collect":
            actions = [("field", column.name, expr) for column, expr in zip(statement.outputs, row.results)]
        else:
            actions = [("set", slot, expr) for slot, expr in zip(column_slots, row.results)]
        target = self.leaf(number, str(number), actions, item, row.span)
        for test, subject in reversed(list(zip(row.tests, statement.inputs))):
            if isinstance(test, (ast.TestAny, ast.TestOtherwise)):
                continue
            program = self.test_program(test, subject)
            target = self.node(program, target, on_fail, on_fail, item)
        return target

    def statement_scorecard(self, statement: ast.Scorecard) -> None:
        index = self.begin_statement(O.S_SCORECARD, statement.name, statement.span)
        symbol = self.analysis.symbols[statement.name]
        self.out.stmt_base[index] = float(statement.base)
        for position, characteristic in enumerate(statement.characteristics):
            item = self.string(f"characteristic {position + 1}")
            self.current_item = item
            value_type = type_code(self.analysis.type_of(characteristic.expr))
            slot = self.slot(f"{statement.name}#{position + 1}", value_type)
            program = self.expr_program(characteristic.expr)
            subject = _Slot(slot, characteristic.expr.span)
            target = self.leaf(0, "0", (), item, characteristic.span)
            for number in reversed(range(1, len(characteristic.bins) + 1)):
                bin_ = characteristic.bins[number - 1]
                hit = self.leaf(number, str(number), (), item, bin_.span, points=bin_.points, reason=bin_.reason)
                if isinstance(bin_.test, (ast.TestAny, ast.TestOtherwise)):
                    target = hit
                else:
                    target = self.node(self.test_program(bin_.test, subject), hit, target, target, item)
            best = max(float(b.points) for b in characteristic.bins)
            self.add_tree(target, program=program, slot=slot, best=best, item=item)
        value_slot = self.slot(statement.name, type_code(symbol.type))
        reasons_slot = self.slot(f"{statement.name}.reasons", O.T_OBJ)
        self.out.stmt_slot[index] = value_slot
        self.out.stmt_slot2[index] = reasons_slot
        self.slot_of[statement.name] = value_slot
        self.reasons_slot_of[statement.name] = reasons_slot
        self.end_statement(index)

    def statement_tree(self, statement: ast.Tree) -> None:
        index = self.begin_statement(O.S_TREE, statement.name, statement.span)
        self.add_tree(self.tree_level(statement.branches, (), statement.span))
        self.end_statement(index)

    def tree_level(self, branches, path: tuple[int, ...], span: Span) -> int:
        target = self.leaf(-1, ".".join(map(str, path)) or "-", (), -1, span)
        for number in reversed(range(1, len(branches) + 1)):
            branch = branches[number - 1]
            here = (*path, number)
            label = ".".join(map(str, here))
            item = self.string(f"branch {label}")
            nested = [b for b in branch.body if isinstance(b, ast.Branch)]
            if nested:
                body = self.tree_level(nested, here, branch.span)
            else:
                body = self.leaf(0, label, branch.body, item, branch.span)
            if branch.condition is None:
                target = body
            else:
                self.current_item = item
                target = self.condition(branch.condition, body, target, target)
        return target

    # ------------------------------------------------------------ tree nodes

    def node(self, program: int, on_true: int, on_false: int, on_missing: int, item: int) -> int:
        key = ("node", program, on_true, on_false, on_missing, item)
        if key in self.memo:
            return self.memo[key]
        out = self.out
        out.node_program.append(program)
        out.node_true.append(on_true)
        out.node_false.append(on_false)
        out.node_missing.append(on_missing)
        out.node_leaf.append(O.LEAF)
        out.node_item.append(item)
        self.memo[key] = len(out.node_program) - 1
        return self.memo[key]

    def leaf(
        self, index: int, label: str, actions, item: int, span: Span, points: float = 0.0, reason: str | None = None
    ) -> int:
        out = self.out
        start = len(out.action_kind)
        for action in actions:
            self.lower_action(action)
        out.leaf_index.append(index)
        out.leaf_label.append(self.string(label))
        out.leaf_action_start.append(start)
        out.leaf_action_end.append(len(out.action_kind))
        out.leaf_points.append(float(points))
        out.leaf_reason.append(self.string(reason) if reason is not None else -1)
        out.leaf_item.append(item)
        out.leaf_span.append(self.span(span))
        out.node_program.append(-1)
        out.node_true.append(-1)
        out.node_false.append(-1)
        out.node_missing.append(-1)
        out.node_leaf.append(len(out.leaf_index) - 1)
        out.node_item.append(item)
        return len(out.node_program) - 1

    def lower_action(self, action) -> None:
        out = self.out
        if isinstance(action, tuple):  # table results: ("set", slot, expr) / ("field", column name, expr)
            kind, target, expr = action
            out.action_kind.append(O.A_SET if kind == "set" else O.A_FIELD)
            out.action_slot.append(target if kind == "set" else self.string(target))
            out.action_program.append(self.expr_program(expr))
            out.action_output.append(-1)
            out.action_span.append(self.span(expr.span))
            out.action_type.append(type_code(self.analysis.type_of(expr)))
            return
        if isinstance(action, ast.Assign):
            out.action_kind.append(O.A_ASSIGN)
            out.action_slot.append(self.slot_of[action.target])
            out.action_program.append(self.expr_program(action.expr))
            out.action_output.append(out.output_names.index(action.target))
        elif isinstance(action, ast.AddReason):
            out.action_kind.append(O.A_REASON)
            out.action_slot.append(-1)
            out.action_program.append(self.expr_program(action.expr))
            out.action_output.append(-1)
        else:
            out.action_kind.append(O.A_STOP)
            out.action_slot.append(-1)
            out.action_program.append(-1)
            out.action_output.append(-1)
        out.action_span.append(self.span(action.span))
        expr = getattr(action, "expr", None)
        out.action_type.append(type_code(self.analysis.type_of(expr)) if expr is not None else O.T_OBJ)

    def condition(self, expr, on_true: int, on_false: int, on_missing: int) -> int:
        """A three-exit DAG for a condition; `and`/`or` evaluate left to right and stop when decided."""
        key = ("cond", id(expr), on_true, on_false, on_missing, self.current_item)
        if key in self.memo:
            return self.memo[key]
        if isinstance(expr, ast.Bool):
            result = on_true if expr.value else on_false
        elif isinstance(expr, ast.Not):
            result = self.condition(expr.operand, on_false, on_true, on_missing)
        elif isinstance(expr, ast.And):
            # false and _ = false; true and x = x; missing and x = false if x is false, else missing.
            right_after_true = self.condition(expr.right, on_true, on_false, on_missing)
            right_after_missing = self.condition(expr.right, on_missing, on_false, on_missing)
            result = self.condition(expr.left, right_after_true, on_false, right_after_missing)
        elif isinstance(expr, ast.Or):
            right_after_false = self.condition(expr.right, on_true, on_false, on_missing)
            right_after_missing = self.condition(expr.right, on_true, on_missing, on_missing)
            result = self.condition(expr.left, on_true, right_after_false, right_after_missing)
        else:
            result = self.node(self.expr_program(expr), on_true, on_false, on_missing, self.current_item)
        self.memo[key] = result
        return result

    # -------------------------------------------------------------- programs

    def expr_program(self, expr) -> int:
        return self.program(lambda code: self.emit(code, expr))

    def test_program(self, test, subject) -> int:
        def emit(code):
            span = self.span(test.span)
            self.emit(code, subject)
            if isinstance(test, ast.TestMissing):
                code.append((O.OP_NOT_MISSING if test.negated else O.OP_IS_MISSING, 0.0, span))
                return
            # A test on a missing value does not match; its operands are then not evaluated.
            jump_at = len(code)
            code.append((O.OP_JUMP_IF_MISSING_KEEP, 0.0, span))
            if isinstance(test, ast.TestCompare):
                self.emit(code, test.operand)
                code.append((_COMPARE_OPS[test.op], 0.0, span))
            elif isinstance(test, ast.TestInterval):
                self.emit_interval(code, test.interval, span)
            elif isinstance(test, ast.TestSet):
                self.emit_items(code, subject, test.items.items, span)
                if test.negated:
                    code.append((O.OP_NOT, 0.0, span))
            else:  # pragma: no cover
                raise InternalCompilerError(f"unknown unary test {test!r}")
            code[jump_at] = (O.OP_JUMP_IF_MISSING_KEEP, float(len(code)), span)

        return self.program(emit)

    def emit_interval(self, code, interval: ast.Interval, span: int) -> None:
        """Subject on the stack -> whether it lies in the interval (missing if a bound is missing)."""
        low, high = constant_value(interval.low), constant_value(interval.high)
        subject_type = None
        if low is not NOT_CONSTANT and high is not NOT_CONSTANT:
            subject_type = O.T_DATE if hasattr(low, "toordinal") else O.T_NUM
            index = self.add_range(
                self.encode_constant(low, subject_type),
                self.encode_constant(high, subject_type),
                interval.low_closed,
                interval.high_closed,
            )
            code.append((O.OP_IN_RANGE, float(index), span))
            return
        self.emit(code, interval.low)
        self.emit(code, interval.high)
        code.append((O.OP_BETWEEN, float(int(interval.low_closed) + 2 * int(interval.high_closed)), span))

    def emit_items(self, code, subject, items, span: int) -> None:
        """Subject on the stack -> membership in a set literal (spec §5 via the reference's rule)."""
        values = [constant_value(item) for item in items]
        if isinstance(subject, _Slot):
            subject_type = self.out.slot_types[subject.slot]
        else:
            subject_type = type_code(self.analysis.type_of(subject))
        if NOT_CONSTANT not in values and subject_type != O.T_OBJ:
            encoded = [
                self.encode_constant(
                    v, O.T_DATE if hasattr(v, "toordinal") else (O.T_STR if isinstance(v, str) else O.T_NUM)
                )
                for v in values
            ]
            code.append((O.OP_IN_SET, float(self.add_set(encoded)), span))
            return
        for item in items:
            self.emit(code, item)
        code.append((O.OP_IN_ITEMS, float(len(items)), span))

    def emit(self, code: list, expr) -> None:
        """Append instructions that leave the value of `expr` on the stack."""
        if isinstance(expr, _Slot):
            code.append((O.OP_LOAD, float(expr.slot), self.span(expr.span)))
            return
        span = self.span(expr.span)
        # Only literals are folded: arithmetic on constants runs (with its overflow checks) as written.
        value = constant_value(expr) if _is_literal(expr) else NOT_CONSTANT
        if value is not NOT_CONSTANT:
            code.append((O.OP_CONST, self.encode_constant(value, type_code(self.analysis.type_of(expr))), span))
            return
        method = getattr(self, "emit_" + type(expr).__name__.lower())
        method(code, expr, span)

    def emit_number(self, code, expr, span) -> None:  # pragma: no cover - constants are folded above
        code.append((O.OP_CONST, float(expr.value), span))

    def emit_today(self, code, expr, span) -> None:
        code.append((O.OP_LOAD, float(self.out.today_slot), span))

    def emit_name(self, code, expr: ast.Name, span) -> None:
        symbol = self.analysis.symbol_of(expr)
        if symbol is None:  # pragma: no cover - the checker rejects unknown names
            raise InternalCompilerError(f"unbound name {expr.id}")
        if symbol.kind == REASONS:
            code.append((O.OP_ESCAPE, float(self.escape("reasons", (), O.T_OBJ)), span))
            return
        if symbol.kind in (INPUT, OUTPUT, LET, TABLE_COLUMN, SCORECARD, COLLECT_TABLE):
            code.append((O.OP_LOAD, float(self.slot_of[expr.id]), span))
            return
        raise InternalCompilerError(f"cannot load {symbol.describe()}")  # pragma: no cover

    def emit_attribute(self, code, expr: ast.Attribute, span) -> None:
        if isinstance(expr.value, ast.Name) and expr.value.id in self.reasons_slot_of and expr.field == "reasons":
            code.append((O.OP_LOAD, float(self.reasons_slot_of[expr.value.id]), span))
            return
        self.emit(code, expr.value)
        result = type_code(self.analysis.type_of(expr))
        code.append((O.OP_ESCAPE, float(self.escape("field", (O.T_OBJ,), result, expr.field)), span))

    def emit_call(self, code, expr: ast.Call, span) -> None:
        for arg in expr.args:
            self.emit(code, arg)
        result = type_code(self.analysis.type_of(expr))
        arg_types = tuple(type_code(self.analysis.type_of(arg)) for arg in expr.args)
        if expr.func in ("min", "max"):
            code.append((O.OP_MIN if expr.func == "min" else O.OP_MAX, float(len(expr.args)), span))
        elif expr.func == "coalesce":
            code.append((O.OP_COALESCE, float(len(expr.args)), span))
        elif expr.func == "abs":
            code.append((O.OP_ABS_I if result == O.T_INT else O.OP_ABS, 0.0, span))
        elif expr.func == "clamp":
            # Which arguments are ints, so that an error message shows 5, not 5.0, as the reference does.
            flags = sum(1 << i for i, t in enumerate(arg_types) if t == O.T_INT)
            code.append((O.OP_CLAMP, float(flags), span))
        elif expr.func in _NATIVE_CALLS:
            code.append((_NATIVE_CALLS[expr.func], 0.0, span))
        elif expr.func in _ESCAPED_CALLS:
            code.append((O.OP_ESCAPE, float(self.escape(expr.func, arg_types, result)), span))
        elif expr.func in self.analysis.functions_used:
            # A plugin function: an escape the kernel never runs itself (its kind is E_PYTHON), so a row that
            # reaches one bails to the pure-Python kernel, which calls the function.
            code.append((O.OP_ESCAPE, float(self.escape("function", arg_types, result, expr.func)), span))
        else:  # pragma: no cover
            raise InternalCompilerError(f"unknown function {expr.func}")

    def emit_negate(self, code, expr: ast.Negate, span) -> None:
        self.emit(code, expr.operand)
        is_int = type_code(self.analysis.type_of(expr)) == O.T_INT
        code.append((O.OP_NEG_I if is_int else O.OP_NEG, 0.0, span))

    def emit_arith(self, code, expr: ast.Arith, span) -> None:
        self.emit(code, expr.left)
        self.emit(code, expr.right)
        is_int = type_code(self.analysis.type_of(expr)) == O.T_INT
        op = {
            ("+", True): O.OP_ADD_I,
            ("-", True): O.OP_SUB_I,
            ("*", True): O.OP_MUL_I,
            ("+", False): O.OP_ADD,
            ("-", False): O.OP_SUB,
            ("*", False): O.OP_MUL,
        }.get((expr.op, is_int), O.OP_DIV)
        code.append((op, 0.0, span))

    def emit_compare(self, code, expr: ast.Compare, span) -> None:
        self.emit(code, expr.left)
        self.emit(code, expr.right)
        code.append((_COMPARE_OPS[expr.op], 0.0, span))

    def emit_in(self, code, expr: ast.In, span) -> None:
        self.emit(code, expr.item)
        jump_at = len(code)
        code.append((O.OP_JUMP_IF_MISSING_KEEP, 0.0, span))
        container = expr.container
        item_type = type_code(self.analysis.type_of(expr.item))
        if isinstance(container, ast.Interval):
            self.emit_interval(code, container, span)
        elif isinstance(container, ast.SetLiteral):
            self.emit_items(code, expr.item, container.items, span)
        else:
            symbol = self.analysis.symbol_of(container) if isinstance(container, ast.Name) else None
            statement = getattr(symbol, "node", None)
            if isinstance(statement, ast.ListDecl) and statement.members is not None:
                self.emit_items(code, expr.item, statement.members.items, span)
            elif isinstance(statement, ast.ListDecl):
                code.append((O.OP_ESCAPE, float(self.escape("in_list", (item_type,), O.T_BOOL, statement.name)), span))
            else:
                self.emit(code, container)
                code.append((O.OP_ESCAPE, float(self.escape("in_value", (item_type, O.T_OBJ), O.T_BOOL)), span))
        if expr.negated:
            code.append((O.OP_NOT, 0.0, span))
        code[jump_at] = (O.OP_JUMP_IF_MISSING_KEEP, float(len(code)), span)

    def emit_ismissing(self, code, expr: ast.IsMissing, span) -> None:
        self.emit(code, expr.operand)
        code.append((O.OP_NOT_MISSING if expr.negated else O.OP_IS_MISSING, 0.0, span))

    def emit_and(self, code, expr: ast.And, span) -> None:
        self._emit_short_circuit(code, expr, O.OP_JUMP_IF_FALSE_KEEP, O.OP_AND, span)

    def emit_or(self, code, expr: ast.Or, span) -> None:
        self._emit_short_circuit(code, expr, O.OP_JUMP_IF_TRUE_KEEP, O.OP_OR, span)

    def _emit_short_circuit(self, code, expr, jump_op: int, combine_op: int, span) -> None:
        """Left side; if it already decides (false for `and`, true for `or`) skip the right side."""
        self.emit(code, expr.left)
        jump_at = len(code)
        code.append((jump_op, 0.0, span))
        self.emit(code, expr.right)
        code.append((combine_op, 0.0, span))
        code[jump_at] = (jump_op, float(len(code)), span)

    def emit_not(self, code, expr: ast.Not, span) -> None:
        self.emit(code, expr.operand)
        code.append((O.OP_NOT, 0.0, span))

    def emit_ifelse(self, code, expr: ast.IfElse, span) -> None:
        self.emit(code, expr.condition)
        branch_at = len(code)
        code.append((O.OP_JUMP_UNLESS_TRUE, 0.0, span))
        self.emit(code, expr.then)
        jump_at = len(code)
        code.append((O.OP_JUMP, 0.0, span))
        code[branch_at] = (O.OP_JUMP_UNLESS_TRUE, float(len(code)), span)
        self.emit(code, expr.otherwise)
        code[jump_at] = (O.OP_JUMP, float(len(code)), span)


def _is_literal(expr) -> bool:
    if isinstance(expr, (ast.Number, ast.String, ast.Bool)):
        return True
    if isinstance(expr, ast.Negate):
        return isinstance(expr.operand, ast.Number)
    return (
        isinstance(expr, ast.Call)
        and expr.func == "date"
        and len(expr.args) == 1
        and isinstance(expr.args[0], ast.String)
    )


@dataclass(frozen=True)
class _Slot:
    """A subject already computed into a slot (a scorecard characteristic's value)."""

    slot: int
    span: Span = NO_SPAN
