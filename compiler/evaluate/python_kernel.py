"""The pure-Python evaluator of `PolicyArrays`: the twin of the Cython kernel (`compiler/_fastpath.pyx`).

Input: `PolicyArrays`, a validated input record (`compiler.evaluate.validate_input`),
the evaluation date and the named lists. Output: (outputs including
`reasons`, trace) exactly as the reference interpreter gives them, or the
same `EvaluationError`.

It walks the decision trees and runs the instruction programs of
`compiler.lower.to_trees`; it is the fallback when the extension is not built
(`DECIDE_PUREPYTHON=1` forces it) and the definition the kernel must match.
Escapes — instructions on strings' text, lists and records — live here
(`run_escape`) and the kernel calls them too.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping
from typing import Any

from compiler.check.fold_constants import show_value
from compiler.evaluate import messages
from compiler.functions import FunctionFailure, call_function
from compiler.lower import opcodes as O
from compiler.lower.arrays import ARRAY_FIELDS, CorruptArtefact, PolicyArrays
from compiler.values import (
    MAX_EXACT_INT,
    ValueProblem,
    check_int,
    check_number,
    parse_date,
    round_half_away,
    years_between,
)
from dsl.errors import EvaluationError

_MAX_ORDINAL = _dt.date.max.toordinal()


class _Stop(Exception):
    """`stop`: end the whole policy now, keeping the outputs as they are."""


class Prepared:
    """A `PolicyArrays` with its arrays as Python lists (indexing a list is much faster than numpy), and the
    plugin functions its calls run (`FunctionSpec` by name; bound by `CompiledPolicy`)."""

    def __init__(self, arrays: PolicyArrays, functions: Mapping[str, Any] | None = None) -> None:
        self.arrays = arrays
        self.functions: Mapping[str, Any] = functions or {}
        for name in ARRAY_FIELDS:
            setattr(self, name, getattr(arrays, name).tolist())
        self.strings = arrays.strings
        self.string_ids = {text: index for index, text in enumerate(arrays.strings)}
        self.sets = [
            frozenset(self.set_values[self.set_start[i] : self.set_start[i + 1]])
            for i in range(len(self.set_start) - 1)
        ]
        self.spans = arrays.spans


class Frame:
    """The state of one evaluation: slot values and missing flags, dynamic strings, objects."""

    def __init__(self, prepared: Prepared) -> None:
        self.p = prepared
        # The slots (`value`, `missing`) are made by _reset_frame; the Cython kernel keeps its own in C.
        self.value: list[float] = []
        self.missing: list[bool] = []
        self.extra_strings: list[str] = []
        self.extra_ids: dict[str, int] = {}
        self.objects: list[Any] = []
        self.reasons: list[str] = []
        self.statement = -1
        self.item = -1
        self.visits: list[tuple[int, str]] | None = None

    # ---------------------------------------------------------- conversions

    def intern(self, text: str) -> float:
        index = self.p.string_ids.get(text)
        if index is not None:
            return float(index)
        index = self.extra_ids.get(text)
        if index is None:
            index = len(self.p.strings) + len(self.extra_strings)
            self.extra_ids[text] = index
            self.extra_strings.append(text)
        return float(index)

    def text(self, value: float) -> str:
        index = int(value)
        pool = self.p.strings
        if 0 <= index < len(pool):
            return pool[index]
        if 0 <= index - len(pool) < len(self.extra_strings):
            return self.extra_strings[index - len(pool)]
        raise CorruptArtefact(f"compiled policy '{self.p.arrays.name}' is corrupt: a string id is out of range")

    def encode(self, value: Any, type_: int) -> float:
        if type_ == O.T_STR:
            return self.intern(value)
        if type_ == O.T_DATE:
            return float(value.toordinal())
        if type_ == O.T_BOOL:
            return 1.0 if value else 0.0
        if type_ == O.T_OBJ:
            self.objects.append(value)
            return float(len(self.objects) - 1)
        return float(value)

    def decode(self, value: float, type_: int) -> Any:
        if type_ == O.T_NUM:
            return value
        if type_ == O.T_INT:
            if not -MAX_EXACT_INT <= value <= MAX_EXACT_INT:  # also false for NaN
                raise CorruptArtefact(
                    f"compiled policy '{self.p.arrays.name}' is corrupt: a whole number is out of range"
                )
            return int(value)
        if type_ == O.T_BOOL:
            return value != 0.0
        if type_ == O.T_STR:
            return self.text(value)
        if type_ == O.T_DATE:
            if not 1 <= value <= _MAX_ORDINAL:
                raise CorruptArtefact(f"compiled policy '{self.p.arrays.name}' is corrupt: a date is out of range")
            return _dt.date.fromordinal(int(value))
        if not 0 <= value < len(self.objects):
            raise CorruptArtefact(f"compiled policy '{self.p.arrays.name}' is corrupt: an object is out of range")
        return self.objects[int(value)]

    # --------------------------------------------------------------- errors

    def fail(self, message: str, span_id: int = -1, output: str | None = None) -> EvaluationError:
        p = self.p
        statement = p.strings[p.stmt_name[self.statement]] if self.statement >= 0 else None
        item = p.strings[self.item] if self.item >= 0 else None
        span = p.spans[span_id] if span_id >= 0 else None
        return messages.evaluation_error(
            message, span, policy=p.arrays.name, statement=statement, item=item, output=output
        )


def evaluate_arrays(
    prepared: Prepared,
    record: dict[str, Any],
    today: _dt.date,
    lists: dict[str, frozenset],
    visits: list[tuple[int, str]] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Evaluate one validated record; returns (outputs including `reasons`, trace).

    With `visits`, every tree node passed is appended as (node, outcome) for `decide explain`, and the value
    of every let and scorecard total as (-(statement + 1), value).
    """
    p = prepared
    frame = Frame(p)
    frame.visits = visits
    frame.lists = lists  # type: ignore[attr-defined]
    _reset_frame(frame, float(today.toordinal()))
    for name, slot in zip(p.arrays.input_names, p.input_slots):
        value = record.get(name)
        if value is not None:
            frame.value[slot] = frame.encode(value, p.slot_types[slot])
            frame.missing[slot] = False
    trace = _run_statements(frame)
    outputs: dict[str, Any] = {}
    for name, slot in zip(p.arrays.output_names, p.output_slots):
        if frame.missing[slot]:
            outputs[name] = None
        else:
            value = frame.decode(frame.value[slot], p.slot_types[slot])
            outputs[name] = list(value) if isinstance(value, list) else value
    outputs["reasons"] = list(frame.reasons)
    return outputs, trace


def _reset_frame(frame: Frame, today: float) -> None:
    """Every slot missing but today's date and the outputs' starting values; no reasons, no objects."""
    p = frame.p
    n = len(p.slot_types)
    frame.value = [0.0] * n
    frame.missing = [True] * n
    frame.reasons = []
    frame.objects = []
    frame.value[p.arrays.today_slot] = today
    frame.missing[p.arrays.today_slot] = False
    for output, slot in enumerate(p.output_slots):
        start = p.output_default_missing[output]
        if start == 0:
            frame.value[slot], frame.missing[slot] = p.output_default[output], False
        elif start == 2:
            frame.value[slot], frame.missing[slot] = frame.encode([], O.T_OBJ), False


def _run_statements(frame: Frame) -> list[str]:
    trace: list[str] = []
    try:
        for statement in range(len(frame.p.stmt_kind)):
            frame.statement = statement
            frame.item = -1
            _run_statement(frame, statement, trace)
            if frame.visits is not None and frame.p.stmt_kind[statement] in (O.S_LET, O.S_SCORECARD):
                # For `decide explain`: the value a let or a scorecard's total took, as (-(statement + 1), value).
                slot = frame.p.stmt_slot[statement]
                value = None if frame.missing[slot] else frame.decode(frame.value[slot], frame.p.slot_types[slot])
                frame.visits.append((-(statement + 1), value))
    except _Stop:
        pass
    return trace


def evaluate_columns(
    frame: Frame,
    inputs,
    inputs_missing,
    today,
    skip,
    out_values,
    out_missing,
    want_trace: bool,
):
    """Rows of encoded input columns -> output columns (the pure twin of `Runner.evaluate_columns`).

    `inputs`/`inputs_missing` are (inputs x rows) arrays of encoded values; rows with `skip` set are
    left missing. Writes `out_values`/`out_missing` (outputs x rows); returns (reasons per row, traces
    per row or None, the `EvaluationError` or None per row, {output index: Python value per row} for outputs
    holding lists).
    """
    p = frame.p
    n_rows = len(today)
    object_outputs = {i: [None] * n_rows for i, slot in enumerate(p.output_slots) if p.slot_types[slot] == O.T_OBJ}
    reasons: list = [None] * n_rows
    traces: list | None = [None] * n_rows if want_trace else None
    errors: list = [None] * n_rows
    input_slots = p.input_slots
    for row in range(n_rows):
        if skip[row]:
            continue
        _reset_frame(frame, float(today[row]))
        for i, slot in enumerate(input_slots):
            if not inputs_missing[i, row]:
                frame.value[slot] = float(inputs[i, row])
                frame.missing[slot] = False
        try:
            trace = _run_statements(frame)
        except EvaluationError as exc:
            errors[row] = exc
            continue
        for i, slot in enumerate(p.output_slots):
            if frame.missing[slot]:
                continue
            if i in object_outputs:
                object_outputs[i][row] = _plain(frame.decode(frame.value[slot], O.T_OBJ))
            else:
                out_values[i, row] = frame.value[slot]
                out_missing[i, row] = 0
        reasons[row] = list(frame.reasons)
        if traces is not None:
            traces[row] = trace
    return reasons, traces, errors, object_outputs


# ------------------------------------------------------------------ statements


def _run_statement(frame: Frame, s: int, trace: list[str]) -> None:
    p = frame.p
    kind = p.stmt_kind[s]
    name = p.strings[p.stmt_name[s]]
    if kind == O.S_LET:
        slot = p.stmt_slot[s]
        frame.value[slot], frame.missing[slot] = run_program(frame, p.stmt_program[s])
        return
    if kind == O.S_LIST:
        return
    trees = range(p.stmt_tree_start[s], p.stmt_tree_end[s])
    if kind in (O.S_RULES_FIRST, O.S_RULES_ALL):
        fired: list[str] = []
        try:
            for tree in trees:
                frame.item = p.tree_item[tree]
                leaf = walk(frame, p.tree_root[tree])
                if p.leaf_index[leaf] >= 0:
                    fired.append(p.strings[p.leaf_label[leaf]])
                    run_actions(frame, leaf)
        finally:
            trace.append(f"{name}:{','.join(fired) or '-'}")
        return
    if kind == O.S_TREE:
        label = "-"
        try:
            leaf = walk(frame, p.tree_root[p.stmt_tree_start[s]])
            label = p.strings[p.leaf_label[leaf]]
            run_actions(frame, leaf)
        finally:
            trace.append(f"{name}:{label}")
        return
    if kind == O.S_SCORECARD:
        _run_scorecard(frame, s, name, trees, trace)
        return
    _run_table(frame, s, kind, name, trees, trace)


def _run_table(frame: Frame, s: int, kind: int, name: str, trees: range, trace: list[str]) -> None:
    p = frame.p
    matched: list[int] = []
    for tree in trees:
        frame.item = p.tree_item[tree]
        leaf = walk(frame, p.tree_root[tree])
        if p.leaf_index[leaf] >= 0:
            matched.append(leaf)
    trace.append(f"{name}:{','.join(str(p.leaf_index[leaf]) for leaf in matched) or '-'}")
    if kind == O.S_TABLE_UNIQUE and len(matched) > 1:
        frame.item = -1
        raise frame.fail(messages.unique_rows_overlap([p.leaf_index[leaf] for leaf in matched]), p.stmt_span[s])
    if kind == O.S_TABLE_COLLECT:
        records = []
        for leaf in matched:
            frame.item = p.leaf_item[leaf]
            record = {}
            for action in range(p.leaf_action_start[leaf], p.leaf_action_end[leaf]):
                value, missing = run_program(frame, p.action_program[action])
                record[p.strings[p.action_slot[action]]] = (
                    None if missing else _plain(frame.decode(value, p.action_type[action]))
                )
            records.append(record)
        sort = p.stmt_sort[s]
        if sort >= 0:
            column = p.strings[sort]
            present = [r for r in records if r.get(column) is not None]
            absent = [r for r in records if r.get(column) is None]
            present.sort(key=lambda r: r[column], reverse=bool(p.stmt_descending[s]))
            records = present + absent
        limit = p.stmt_base[s]
        if limit >= 0:
            records = records[: int(limit)]
        slot = p.stmt_slot[s]
        frame.value[slot], frame.missing[slot] = frame.encode(records, O.T_OBJ), False
        return
    columns = p.column_slots[p.column_start[s] : p.column_start[s + 1]]
    if matched:
        run_actions(frame, matched[0])
    else:
        for slot in columns:
            frame.missing[slot] = True


def _run_scorecard(frame: Frame, s: int, name: str, trees: range, trace: list[str]) -> None:
    p = frame.p
    total = p.stmt_base[s]
    hits: list[str] = []
    scored: list[tuple[float, int, str]] = []
    for position, tree in enumerate(trees):
        frame.item = p.tree_item[tree]
        slot = p.tree_slot[tree]
        frame.value[slot], frame.missing[slot] = run_program(frame, p.tree_program[tree])
        leaf = walk(frame, p.tree_root[tree])
        hits.append(str(p.leaf_index[leaf]))
        total += p.leaf_points[leaf]
        if p.leaf_reason[leaf] >= 0:
            scored.append((p.tree_best[tree] - p.leaf_points[leaf], position, p.strings[p.leaf_reason[leaf]]))
    trace.append(f"{name}:{','.join(hits)}")
    scored.sort(key=lambda entry: (-entry[0], entry[1]))
    reasons: list[str] = []
    for _, _, code in scored:
        if code not in reasons:
            reasons.append(code)
    slot = p.stmt_slot[s]
    frame.value[slot], frame.missing[slot] = total, False
    reasons_slot = p.stmt_slot2[s]
    frame.value[reasons_slot], frame.missing[reasons_slot] = frame.encode(reasons, O.T_OBJ), False


def walk(frame: Frame, node: int) -> int:
    """Follow a tree from `node` to a leaf; returns the leaf index."""
    p = frame.p
    while p.node_leaf[node] < 0:
        frame.item = p.node_item[node]
        value, missing = run_program(frame, p.node_program[node])
        if frame.visits is not None:
            frame.visits.append((node, "missing" if missing else ("true" if value != 0.0 else "false")))
        if missing:
            node = p.node_missing[node]
        elif value != 0.0:
            node = p.node_true[node]
        else:
            node = p.node_false[node]
    if frame.visits is not None:
        frame.visits.append((node, "leaf"))
    leaf = p.node_leaf[node]
    frame.item = p.leaf_item[leaf] if p.leaf_item[leaf] >= 0 else frame.item
    return leaf


def run_actions(frame: Frame, leaf: int) -> None:
    p = frame.p
    if p.leaf_item[leaf] >= 0:
        frame.item = p.leaf_item[leaf]
    for action in range(p.leaf_action_start[leaf], p.leaf_action_end[leaf]):
        kind = p.action_kind[action]
        if kind == O.A_STOP:
            raise _Stop()
        value, missing = run_program(frame, p.action_program[action])
        if kind == O.A_SET:
            slot = p.action_slot[action]
            frame.value[slot], frame.missing[slot] = value, missing
        elif kind == O.A_ASSIGN:
            _assign(frame, action, value, missing)
        elif kind == O.A_REASON:
            codes = frame.decode(value, p.action_type[action]) if not missing else None
            for code in codes if isinstance(codes, list) else [codes]:
                if code is None:
                    raise frame.fail(messages.missing_reason_code(), p.action_span[action], output="reasons")
                if code not in frame.reasons:
                    frame.reasons.append(code)


def _assign(frame: Frame, action: int, value: float, missing: bool) -> None:
    p = frame.p
    output = p.action_output[action]
    name = p.arrays.output_names[output]
    slot = p.action_slot[action]
    if missing:
        if not p.output_optional[output]:
            raise frame.fail(
                messages.missing_required_output(name),
                p.action_span[action],
                output=name,
            )
        frame.missing[slot] = True
        return
    type_ = p.slot_types[slot]
    if type_ == O.T_OBJ:
        value = frame.encode(list(frame.objects[int(value)]), O.T_OBJ)
    allowed_set, allowed_range = p.output_allowed_set[output], p.output_allowed_range[output]
    if (allowed_set >= 0 and value not in p.sets[allowed_set]) or (
        allowed_range >= 0 and not _in_range(p, allowed_range, value)
    ):
        shown = show_value(frame.decode(value, type_)) if p.arrays.reveal_values else messages.HIDDEN_VALUE
        raise frame.fail(
            messages.output_not_allowed(name, shown, p.arrays.output_constraint_text[output]),
            p.action_span[action],
            output=name,
        )
    frame.value[slot], frame.missing[slot] = value, False


def _in_range(p: Prepared, index: int, x: float) -> bool:
    flags = p.range_flags[index]
    low, high = p.range_low[index], p.range_high[index]
    above = x >= low if flags & 1 else x > low
    below = x <= high if flags & 2 else x < high
    return above and below


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


# -------------------------------------------------------------------- programs


def run_program(frame: Frame, program: int) -> tuple[float, bool]:
    """Run one instruction program; returns (value, missing)."""
    p = frame.p
    values: list[float] = []
    missing: list[bool] = []
    start = p.program_start[program]
    end = p.program_start[program + 1]
    pc = start
    code_op, code_arg = p.code_op, p.code_arg
    while pc < end:
        op = code_op[pc]
        arg = code_arg[pc]
        pc += 1
        if op == O.OP_CONST:
            values.append(arg)
            missing.append(False)
        elif op == O.OP_LOAD:
            slot = int(arg)
            values.append(frame.value[slot])
            missing.append(frame.missing[slot])
        elif op == O.OP_MISSING:
            values.append(0.0)
            missing.append(True)
        elif O.OP_ADD <= op <= O.OP_DIV or O.OP_ADD_I <= op <= O.OP_MUL_I:
            right, right_missing = values.pop(), missing.pop()
            left, left_missing = values[-1], missing[-1]
            if left_missing or right_missing:
                values[-1], missing[-1] = 0.0, True
                continue
            if op == O.OP_DIV and right == 0.0:
                values[-1], missing[-1] = 0.0, True
                continue
            values[-1] = _arith(frame, op, left, right, pc - 1)
        elif op == O.OP_NEG or op == O.OP_NEG_I:
            if not missing[-1]:
                values[-1] = -values[-1]
        elif O.OP_EQ <= op <= O.OP_GE:
            right, right_missing = values.pop(), missing.pop()
            left, left_missing = values[-1], missing[-1]
            if left_missing or right_missing:
                values[-1], missing[-1] = 0.0, True
                continue
            values[-1] = 1.0 if _COMPARE[op](left, right) else 0.0
        elif op == O.OP_AND or op == O.OP_OR:
            right, right_missing = values.pop(), missing.pop()
            left, left_missing = values[-1], missing[-1]
            decisive = 0.0 if op == O.OP_AND else 1.0
            if (not left_missing and left == decisive) or (not right_missing and right == decisive):
                values[-1], missing[-1] = decisive, False
            elif left_missing or right_missing:
                values[-1], missing[-1] = 0.0, True
            else:
                values[-1], missing[-1] = 1.0 - decisive, False
        elif op == O.OP_NOT:
            if not missing[-1]:
                values[-1] = 1.0 - values[-1]
        elif op == O.OP_IS_MISSING or op == O.OP_NOT_MISSING:
            is_missing = missing[-1]
            values[-1] = 1.0 if is_missing == (op == O.OP_IS_MISSING) else 0.0
            missing[-1] = False
        elif op == O.OP_JUMP_UNLESS_TRUE:
            value, was_missing = values.pop(), missing.pop()
            if was_missing or value == 0.0:
                pc = start + int(arg)
        elif op == O.OP_JUMP:
            pc = start + int(arg)
        elif op == O.OP_JUMP_IF_FALSE_KEEP:
            if not missing[-1] and values[-1] == 0.0:
                pc = start + int(arg)
        elif op == O.OP_JUMP_IF_TRUE_KEEP:
            if not missing[-1] and values[-1] != 0.0:
                pc = start + int(arg)
        elif op == O.OP_JUMP_IF_MISSING_KEEP:
            if missing[-1]:
                pc = start + int(arg)
        elif op == O.OP_IN_SET:
            if not missing[-1]:
                values[-1] = 1.0 if values[-1] in p.sets[int(arg)] else 0.0
        elif op == O.OP_IN_RANGE:
            if not missing[-1]:
                values[-1] = 1.0 if _in_range(p, int(arg), values[-1]) else 0.0
        elif op == O.OP_BETWEEN:
            high, high_missing = values.pop(), missing.pop()
            low, low_missing = values.pop(), missing.pop()
            if low_missing or high_missing or missing[-1]:
                values[-1], missing[-1] = 0.0, True
                continue
            x, flags = values[-1], int(arg)
            above = x >= low if flags & 1 else x > low
            below = x <= high if flags & 2 else x < high
            values[-1] = 1.0 if above and below else 0.0
        elif op == O.OP_IN_ITEMS:
            count = int(arg)
            items, items_missing = values[-count:], missing[-count:]
            del values[-count:], missing[-count:]
            x = values[-1]
            if any(not m and item == x for item, m in zip(items, items_missing)):
                values[-1], missing[-1] = 1.0, False
            elif any(items_missing):
                values[-1], missing[-1] = 0.0, True
            else:
                values[-1], missing[-1] = 0.0, False
        elif op in (O.OP_MIN, O.OP_MAX, O.OP_COALESCE):
            count = int(arg)
            args, args_missing = values[-count:], missing[-count:]
            del values[-count:], missing[-count:]
            if op == O.OP_COALESCE:
                present = [a for a, m in zip(args, args_missing) if not m]
                values.append(present[0] if present else 0.0)
                missing.append(not present)
            elif any(args_missing):
                values.append(0.0)
                missing.append(True)
            else:
                values.append(min(args) if op == O.OP_MIN else max(args))
                missing.append(False)
        elif op in (O.OP_ABS, O.OP_ABS_I, O.OP_FLOOR, O.OP_CEIL):
            if not missing[-1]:
                x = values[-1]
                if op == O.OP_FLOOR or op == O.OP_CEIL:
                    try:
                        values[-1] = float(check_int(math.floor(x) if op == O.OP_FLOOR else math.ceil(x)))
                    except ValueProblem as exc:
                        raise _call_failure(frame, "floor" if op == O.OP_FLOOR else "ceil", exc, pc - 1) from None
                else:
                    values[-1] = abs(x)
        elif op == O.OP_CLAMP:
            high, high_missing = values.pop(), missing.pop()
            low, low_missing = values.pop(), missing.pop()
            if missing[-1] or low_missing or high_missing:
                values[-1], missing[-1] = 0.0, True
                continue
            if low > high:
                flags = int(arg)
                shown_low = int(low) if flags & 2 else low
                shown_high = int(high) if flags & 4 else high
                problem = ValueProblem(messages.clamp_bounds_inverted(shown_low, shown_high))
                raise _call_failure(frame, "clamp", problem, pc - 1)
            values[-1] = min(max(values[-1], low), high)
        elif op == O.OP_DAYS_BETWEEN or op == O.OP_YEARS_BETWEEN:
            end_day, end_missing = values.pop(), missing.pop()
            if missing[-1] or end_missing:
                values[-1], missing[-1] = 0.0, True
                continue
            if op == O.OP_DAYS_BETWEEN:
                values[-1] = end_day - values[-1]
            else:
                start_date, end_date = frame.decode(values[-1], O.T_DATE), frame.decode(end_day, O.T_DATE)
                values[-1] = float(years_between(start_date, end_date))
        elif op == O.OP_ESCAPE:
            run_escape(frame, int(arg), values, missing, pc - 1)
        else:  # pragma: no cover - validate() rejects unknown instructions
            raise frame.fail(messages.Message(f"unknown instruction {op}", "corrupt_artefact"), p.code_span[pc - 1])
    return values[-1], missing[-1]


_COMPARE = {
    O.OP_EQ: lambda a, b: a == b,
    O.OP_NE: lambda a, b: a != b,
    O.OP_LT: lambda a, b: a < b,
    O.OP_LE: lambda a, b: a <= b,
    O.OP_GT: lambda a, b: a > b,
    O.OP_GE: lambda a, b: a >= b,
}


def _arith(frame: Frame, op: int, left: float, right: float, pc: int) -> float:
    if op in (O.OP_ADD, O.OP_ADD_I):
        result = left + right
    elif op in (O.OP_SUB, O.OP_SUB_I):
        result = left - right
    elif op in (O.OP_MUL, O.OP_MUL_I):
        result = left * right
    else:
        result = left / right
    try:
        if op >= O.OP_ADD_I:
            # Operands are exact (|x| <= 2**53); only a result at or past 2**53 may have been rounded,
            # so redo that one in exact integers to check (and report) it as the reference does.
            if abs(result) >= MAX_EXACT_INT:
                exact = (
                    int(left) + int(right)
                    if op == O.OP_ADD_I
                    else (int(left) - int(right) if op == O.OP_SUB_I else int(left) * int(right))
                )
                return float(check_int(exact))
            return result
        return check_number(result)
    except ValueProblem as exc:
        raise frame.fail(str(exc), frame.p.code_span[pc]) from None


def _call_failure(frame: Frame, function: str, exc: ValueProblem, pc: int) -> EvaluationError:
    detail = str(exc) if frame.p.arrays.reveal_values else messages.HIDDEN_ARGUMENT
    return frame.fail(messages.builtin_failed(function, detail), frame.p.code_span[pc])


def run_escape(frame: Frame, index: int, values: list[float], missing: list[bool], pc: int) -> None:
    """Run an escape instruction on the stack (shared with the Cython kernel)."""
    escape = frame.p.arrays.escapes[index]
    count = len(escape.arg_types)
    args_values = values[len(values) - count :] if count else []
    args_missing = missing[len(missing) - count :] if count else []
    if count:
        del values[-count:], missing[-count:]
    if escape.name == "function":
        args = [None if gone else frame.decode(v, t) for v, gone, t in zip(args_values, args_missing, escape.arg_types)]
        result = _function_value(frame, escape, args, pc)
    elif any(args_missing):
        values.append(0.0)
        missing.append(True)
        return
    else:
        args = [frame.decode(value, type_) for value, type_ in zip(args_values, escape.arg_types)]
        result = _escape_value(frame, escape, args, pc)
    if result is None:
        values.append(0.0)
        missing.append(True)
    else:
        values.append(frame.encode(result, escape.result_type))
        missing.append(False)


def _function_value(frame: Frame, escape, args: list[Any], pc: int) -> Any:
    """A plugin function's call (None arguments are missing): as the reference runs it, through `call_function`."""
    spec = frame.p.functions.get(escape.detail)
    if spec is None:  # CompiledPolicy binds every function its calls name; a bare Prepared may lack them
        raise frame.fail(
            messages.Message(f"the plugin function {escape.detail} was not supplied", "function_not_supplied"),
            frame.p.code_span[pc],
        )
    try:
        return call_function(spec, args, reveal=frame.p.arrays.reveal_values)
    except FunctionFailure as exc:
        raise frame.fail(exc.message, frame.p.code_span[pc]) from None


def _escape_value(frame: Frame, escape, args: list[Any], pc: int) -> Any:
    name = escape.name
    if name == "reasons":
        return list(frame.reasons)
    if name == "field":
        value = args[0]
        if isinstance(value, list):
            return [None if item is None else item.get(escape.detail) for item in value]
        return value.get(escape.detail)
    if name == "in_list":
        members = frame.lists.get(escape.detail)  # type: ignore[attr-defined]
        if members is None:
            raise CorruptArtefact(f"compiled policy '{frame.p.arrays.name}' is corrupt: unknown list")
        return args[0] in members
    if name == "in_value":
        item, members = args
        return any(isinstance(item, bool) == isinstance(m, bool) and item == m for m in members)
    try:
        if name == "round":
            return round_half_away(args[0], args[1])
        if name == "len":
            return len(args[0])
        if name == "lower":
            return args[0].lower()
        if name == "upper":
            return args[0].upper()
        if name == "contains":
            return args[1] in args[0]
        if name == "starts_with":
            return args[0].startswith(args[1])
        if name == "top":
            return list(args[0][: max(args[1], 0)])
        if name == "date":
            return parse_date(args[0])
    except ValueProblem as exc:
        raise _call_failure(frame, name, exc, pc) from None
    raise frame.fail(
        messages.Message(f"unknown escape {name}", "corrupt_artefact"), frame.p.code_span[pc]
    )  # pragma: no cover
