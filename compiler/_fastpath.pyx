# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""The Cython kernel: one generic evaluator of `PolicyArrays`, the twin of `compiler/evaluate_arrays.py`.

Input: validated `PolicyArrays` (every index checked by `validate`, stack
depths included, which is what makes running without bounds checks safe),
a validated record, the evaluation date and the named lists. Output: the
same (outputs, trace) as the pure-Python twin and the reference interpreter,
or the same `EvaluationError`.

Slot values, the instruction stack and the tree walk are C arrays and C
loops. Escapes (strings' text, lists, records) and the error messages call
the twin's Python functions, so both implementations share one definition
of everything that is not arithmetic on numbers.
"""

from libc.math cimport ceil, fabs, floor, isfinite
from libc.stdlib cimport free, malloc

import datetime as _dt

from compiler import evaluate_arrays as _twin
from compiler import opcodes as O
from compiler.arrays import PolicyArrays
from dsl.diagnostics import EvaluationError as _EvaluationError

cdef double MAX_EXACT_INT = 9007199254740992.0

# Mirrors of compiler/opcodes.py (checked against it by tests/test_fastpath.py).
cdef enum:
    T_NUM = 0
    T_INT = 1
    T_BOOL = 2
    T_STR = 3
    T_DATE = 4
    T_OBJ = 5

cdef enum:
    OP_CONST = 0
    OP_MISSING = 1
    OP_LOAD = 2
    OP_ADD = 3
    OP_SUB = 4
    OP_MUL = 5
    OP_DIV = 6
    OP_NEG = 7
    OP_ADD_I = 8
    OP_SUB_I = 9
    OP_MUL_I = 10
    OP_NEG_I = 11
    OP_EQ = 12
    OP_NE = 13
    OP_LT = 14
    OP_LE = 15
    OP_GT = 16
    OP_GE = 17
    OP_AND = 18
    OP_OR = 19
    OP_NOT = 20
    OP_IS_MISSING = 21
    OP_NOT_MISSING = 22
    OP_JUMP_UNLESS_TRUE = 23
    OP_JUMP = 24
    OP_JUMP_IF_FALSE_KEEP = 25
    OP_JUMP_IF_TRUE_KEEP = 26
    OP_IN_SET = 27
    OP_IN_RANGE = 28
    OP_MIN = 29
    OP_MAX = 30
    OP_ABS = 31
    OP_ABS_I = 32
    OP_FLOOR = 33
    OP_CEIL = 34
    OP_CLAMP = 35
    OP_COALESCE = 36
    OP_DAYS_BETWEEN = 37
    OP_YEARS_BETWEEN = 38
    OP_ESCAPE = 39
    OP_BETWEEN = 40
    OP_IN_ITEMS = 41
    OP_JUMP_IF_MISSING_KEEP = 42

cdef enum:
    S_LET = 0
    S_RULES_FIRST = 1
    S_RULES_ALL = 2
    S_TABLE_FIRST = 3
    S_TABLE_UNIQUE = 4
    S_TABLE_COLLECT = 5
    S_SCORECARD = 6
    S_TREE = 7
    S_LIST = 8

cdef enum:
    A_ASSIGN = 0
    A_REASON = 1
    A_STOP = 2
    A_SET = 3
    A_FIELD = 4


def constants():
    """The kernel's numbering, for the test that keeps it equal to compiler/opcodes.py."""
    return {
        "types": (T_NUM, T_INT, T_BOOL, T_STR, T_DATE, T_OBJ),
        "ops": tuple(range(OP_JUMP_IF_MISSING_KEEP + 1)),
        "last_op": OP_JUMP_IF_MISSING_KEEP,
        "statements": (S_LET, S_RULES_FIRST, S_RULES_ALL, S_TABLE_FIRST, S_TABLE_UNIQUE, S_TABLE_COLLECT,
                       S_SCORECARD, S_TREE, S_LIST),
        "actions": (A_ASSIGN, A_REASON, A_STOP, A_SET, A_FIELD),
    }


cdef class _State:
    """C buffers of one evaluation; the Python `Frame` keeps strings, objects and reasons."""

    cdef double* value
    cdef char* missing
    cdef double* stack
    cdef char* stack_missing
    cdef object frame

    def __cinit__(self, int n_slots, int max_stack):
        self.value = <double*> malloc(max(n_slots, 1) * sizeof(double))
        self.missing = <char*> malloc(max(n_slots, 1) * sizeof(char))
        self.stack = <double*> malloc((max_stack + 1) * sizeof(double))
        self.stack_missing = <char*> malloc((max_stack + 1) * sizeof(char))
        if not self.value or not self.missing or not self.stack or not self.stack_missing:
            raise MemoryError()
        cdef int i
        for i in range(n_slots):
            self.value[i] = 0.0
            self.missing[i] = 1

    def __dealloc__(self):
        free(self.value)
        free(self.missing)
        free(self.stack)
        free(self.stack_missing)


def _leaf_trace_entries(arrays):
    """For every leaf, the trace entry "STATEMENT:LABEL" it stands for (used where one leaf decides)."""
    entries = [None] * len(arrays.leaf_index)
    for statement in range(len(arrays.stmt_kind)):
        name = arrays.strings[int(arrays.stmt_name[statement])]
        for node in arrays.statement_nodes(statement):
            leaf = int(arrays.node_leaf[node])
            if leaf >= 0:
                entries[leaf] = f"{name}:{arrays.strings[int(arrays.leaf_label[leaf])]}"
    return entries


class _StopPolicy(Exception):
    pass


cdef class Runner:
    """Evaluates one compiled policy; build it once per `PolicyArrays` and reuse it."""

    cdef object arrays
    cdef object prepared
    cdef int n_slots, max_stack, today_slot
    cdef const signed char[:] slot_types
    cdef const short[:] code_op
    cdef const double[:] code_arg
    cdef const int[:] code_span, program_start
    cdef const double[:] set_values
    cdef const int[:] set_start
    cdef const double[:] range_low, range_high
    cdef const signed char[:] range_flags
    cdef const int[:] node_program, node_true, node_false, node_missing, node_leaf, node_item
    cdef const int[:] leaf_index, leaf_label, leaf_action_start, leaf_action_end, leaf_reason, leaf_item
    cdef const double[:] leaf_points
    cdef const signed char[:] action_kind, action_type
    cdef const int[:] action_slot, action_program, action_output, action_span
    cdef const int[:] tree_root, tree_program, tree_slot, tree_item
    cdef const double[:] tree_best
    cdef const signed char[:] stmt_kind, stmt_descending
    cdef const int[:] stmt_name, stmt_slot, stmt_slot2, stmt_program, stmt_tree_start, stmt_tree_end, stmt_span
    cdef const int[:] stmt_sort, column_slots, column_start, input_slots, output_slots
    cdef const double[:] stmt_base, output_default
    cdef const signed char[:] output_optional, output_default_missing
    cdef const int[:] output_allowed_set, output_allowed_range
    cdef list strings, input_names, output_names, escape_list_names, leaf_trace
    cdef int n_pool
    cdef signed char[:] escape_is_text_list
    cdef int cur_statement, cur_item

    def __init__(self, arrays: PolicyArrays):
        self.arrays = arrays
        self.prepared = _twin.Prepared(arrays)
        self.n_slots = arrays.n_slots
        self.max_stack = arrays.max_stack
        self.today_slot = arrays.today_slot
        self.strings = list(arrays.strings)
        self.n_pool = len(self.strings)
        # Named-list membership of a string is the hot escape of lending policies (blacklists): run it inline.
        import numpy as _np
        flags = _np.zeros(max(len(arrays.escapes), 1), dtype=_np.int8)
        self.escape_list_names = []
        for index, escape in enumerate(arrays.escapes):
            self.escape_list_names.append(escape.detail)
            if escape.name == "in_list" and escape.arg_types == (T_STR,):
                flags[index] = 1
        self.escape_is_text_list = flags
        self.leaf_trace = _leaf_trace_entries(arrays)
        self.input_names = list(arrays.input_names)
        self.output_names = list(arrays.output_names)
        self.slot_types = arrays.slot_types
        self.code_op = arrays.code_op
        self.code_arg = arrays.code_arg
        self.code_span = arrays.code_span
        self.program_start = arrays.program_start
        self.set_values = arrays.set_values
        self.set_start = arrays.set_start
        self.range_low = arrays.range_low
        self.range_high = arrays.range_high
        self.range_flags = arrays.range_flags
        self.node_program = arrays.node_program
        self.node_true = arrays.node_true
        self.node_false = arrays.node_false
        self.node_missing = arrays.node_missing
        self.node_leaf = arrays.node_leaf
        self.node_item = arrays.node_item
        self.leaf_index = arrays.leaf_index
        self.leaf_label = arrays.leaf_label
        self.leaf_action_start = arrays.leaf_action_start
        self.leaf_action_end = arrays.leaf_action_end
        self.leaf_points = arrays.leaf_points
        self.leaf_reason = arrays.leaf_reason
        self.leaf_item = arrays.leaf_item
        self.action_kind = arrays.action_kind
        self.action_type = arrays.action_type
        self.action_slot = arrays.action_slot
        self.action_program = arrays.action_program
        self.action_output = arrays.action_output
        self.action_span = arrays.action_span
        self.tree_root = arrays.tree_root
        self.tree_program = arrays.tree_program
        self.tree_slot = arrays.tree_slot
        self.tree_item = arrays.tree_item
        self.tree_best = arrays.tree_best
        self.stmt_kind = arrays.stmt_kind
        self.stmt_descending = arrays.stmt_descending
        self.stmt_name = arrays.stmt_name
        self.stmt_slot = arrays.stmt_slot
        self.stmt_slot2 = arrays.stmt_slot2
        self.stmt_program = arrays.stmt_program
        self.stmt_tree_start = arrays.stmt_tree_start
        self.stmt_tree_end = arrays.stmt_tree_end
        self.stmt_span = arrays.stmt_span
        self.stmt_sort = arrays.stmt_sort
        self.column_slots = arrays.column_slots
        self.column_start = arrays.column_start
        self.input_slots = arrays.input_slots
        self.output_slots = arrays.output_slots
        self.stmt_base = arrays.stmt_base
        self.output_default = arrays.output_default
        self.output_optional = arrays.output_optional
        self.output_default_missing = arrays.output_default_missing
        self.output_allowed_set = arrays.output_allowed_set
        self.output_allowed_range = arrays.output_allowed_range

    # ------------------------------------------------------------- entry

    def new_frame(self, lists):
        """A Python frame (strings, objects, reasons) to share across the rows of one batch."""
        frame = _twin.Frame(self.prepared)
        frame.lists = lists
        return frame

    def evaluate(self, dict record, today, lists):
        """One validated record -> (outputs including reasons, trace)."""
        cdef _State state = _State(self.n_slots, self.max_stack)
        cdef int i, slot, type_
        frame = _twin.Frame(self.prepared)
        frame.lists = lists
        state.frame = frame
        self._reset(state, <double> today.toordinal())
        for i, name in enumerate(self.input_names):
            value = record.get(name)
            if value is not None:
                slot = self.input_slots[i]
                type_ = self.slot_types[slot]
                if type_ == T_NUM or type_ == T_INT:
                    state.value[slot] = <double> value
                elif type_ == T_BOOL:
                    state.value[slot] = 1.0 if value else 0.0
                elif type_ == T_DATE:
                    state.value[slot] = <double> value.toordinal()
                elif type_ == T_STR:
                    state.value[slot] = frame.intern(value)
                else:
                    state.value[slot] = frame.encode(value, type_)
                state.missing[slot] = 0
        trace = []
        self._run_statements(state, trace)
        outputs = {}
        for i, name in enumerate(self.output_names):
            slot = self.output_slots[i]
            type_ = self.slot_types[slot]
            if state.missing[slot]:
                outputs[name] = None
            elif type_ == T_NUM:
                outputs[name] = state.value[slot]
            elif type_ == T_INT and fabs(state.value[slot]) <= MAX_EXACT_INT:
                outputs[name] = <long long> state.value[slot]
            elif type_ == T_BOOL:
                outputs[name] = state.value[slot] != 0.0
            elif type_ == T_STR:
                outputs[name] = frame.text(state.value[slot])
            else:
                value = frame.decode(state.value[slot], type_)
                outputs[name] = list(value) if isinstance(value, list) else value
        outputs["reasons"] = list(frame.reasons)
        return outputs, trace

    def evaluate_columns(self, frame, const double[:, :] inputs, const unsigned char[:, :] inputs_missing,
                         const double[:] today, const unsigned char[:] skip, double[:, :] out_values,
                         unsigned char[:, :] out_missing, bint want_trace):
        """Rows of encoded input columns -> output columns; the twin of `evaluate_arrays.evaluate_columns`."""
        cdef Py_ssize_t n_rows = today.shape[0], row
        cdef int n_inputs = self.input_slots.shape[0], n_outputs = self.output_slots.shape[0]
        cdef int i, slot
        cdef _State state = _State(self.n_slots, self.max_stack)
        state.frame = frame
        object_outputs = {i: [None] * n_rows for i in range(n_outputs)
                          if self.slot_types[self.output_slots[i]] == T_OBJ}
        reasons = [None] * n_rows
        traces = [None] * n_rows if want_trace else None
        errors = [None] * n_rows
        for row in range(n_rows):
            if skip[row]:
                continue
            self._reset(state, today[row])
            for i in range(n_inputs):
                slot = self.input_slots[i]
                state.value[slot] = inputs[i, row]
                state.missing[slot] = inputs_missing[i, row]
            trace = [] if want_trace else None
            try:
                self._run_statements(state, trace)
            except _EvaluationError as exc:
                errors[row] = str(exc)
                continue
            for i in range(n_outputs):
                slot = self.output_slots[i]
                if state.missing[slot]:
                    continue
                if i in object_outputs:
                    object_outputs[i][row] = _twin._plain(frame.decode(state.value[slot], T_OBJ))
                else:
                    out_values[i, row] = state.value[slot]
                    out_missing[i, row] = 0
            reasons[row] = list(frame.reasons)
            if want_trace:
                traces[row] = trace
        return reasons, traces, errors, object_outputs

    # -------------------------------------------------------- statements

    cdef _reset(self, _State state, double today):
        """Every slot missing but today's date and the outputs' starting values; no reasons, no objects."""
        cdef int i, slot
        cdef signed char start
        for i in range(self.n_slots):
            state.value[i] = 0.0
            state.missing[i] = 1
        state.value[self.today_slot] = today
        state.missing[self.today_slot] = 0
        frame = state.frame
        frame.reasons = []
        frame.objects = []
        for i in range(self.output_slots.shape[0]):
            slot = self.output_slots[i]
            start = self.output_default_missing[i]
            if start == 0:
                state.value[slot] = self.output_default[i]
                state.missing[slot] = 0
            elif start == 2:
                state.value[slot] = frame.encode([], T_OBJ)
                state.missing[slot] = 0

    cdef _run_statements(self, _State state, list trace):
        cdef int s
        try:
            for s in range(self.stmt_kind.shape[0]):
                self.cur_statement = s
                self.cur_item = -1
                self._statement(state, s, trace)
        except _StopPolicy:
            pass

    cdef _sync(self, _State state):
        """Tell the Python frame where evaluation is, before anything that may raise or escape."""
        frame = state.frame
        frame.statement = self.cur_statement
        frame.item = self.cur_item

    cdef _statement(self, _State state, int s, list trace):
        # `trace` is None when the caller does not want one (a batch without trace=True): skip building it.
        cdef int kind = self.stmt_kind[s]
        cdef int tree, leaf, slot
        cdef double v
        cdef char m
        if kind == S_LET:
            slot = self.stmt_slot[s]
            self._program(state, self.stmt_program[s], &v, &m)
            state.value[slot] = v
            state.missing[slot] = m
            return
        if kind == S_LIST:
            return
        name = self.strings[self.stmt_name[s]]
        if kind == S_RULES_FIRST or kind == S_TREE:
            # One tree, one leaf: its trace entry ("knockouts:K01", "pricing:2.1") is prepared in advance.
            leaf = -1
            try:
                tree = self.stmt_tree_start[s]
                self.cur_item = self.tree_item[tree]
                leaf = self._walk(state, self.tree_root[tree])
                if kind == S_TREE or self.leaf_index[leaf] >= 0:
                    self._actions(state, leaf)
            finally:
                if trace is not None:
                    trace.append(self.leaf_trace[leaf] if leaf >= 0 else f"{name}:-")
            return
        if kind == S_RULES_ALL:
            fired = [] if trace is not None else None
            try:
                for tree in range(self.stmt_tree_start[s], self.stmt_tree_end[s]):
                    self.cur_item = self.tree_item[tree]
                    leaf = self._walk(state, self.tree_root[tree])
                    if self.leaf_index[leaf] >= 0:
                        if fired is not None:
                            fired.append(self.strings[self.leaf_label[leaf]])
                        self._actions(state, leaf)
            finally:
                if trace is not None:
                    trace.append(f"{name}:{','.join(fired) or '-'}")
            return
        if kind == S_SCORECARD:
            self._scorecard(state, s, name, trace)
            return
        self._table(state, s, kind, name, trace)

    cdef _table(self, _State state, int s, int kind, str name, list trace):
        cdef int tree, leaf, i, slot
        cdef list matched = []
        for tree in range(self.stmt_tree_start[s], self.stmt_tree_end[s]):
            self.cur_item = self.tree_item[tree]
            leaf = self._walk(state, self.tree_root[tree])
            if self.leaf_index[leaf] >= 0:
                matched.append(leaf)
        if trace is not None:
            if kind == S_TABLE_FIRST:
                trace.append(self.leaf_trace[matched[0]] if matched else f"{name}:-")
            else:
                trace.append(f"{name}:{','.join([str(self.leaf_index[l]) for l in matched]) or '-'}")
        if kind == S_TABLE_UNIQUE and len(matched) > 1:
            self.cur_item = -1
            self._sync(state)
            rows = [str(self.leaf_index[l]) for l in matched]
            raise state.frame.fail(
                f"rows {', '.join(rows[:len(rows) - 1])} and {rows[len(rows) - 1]} all match this input, "
                "but the table is unique",
                self.stmt_span[s],
            )
        if kind == S_TABLE_COLLECT:
            self._collect(state, s, matched)
            return
        if matched:
            self._actions(state, matched[0])
        else:
            for i in range(self.column_start[s], self.column_start[s + 1]):
                state.missing[self.column_slots[i]] = 1

    cdef _collect(self, _State state, int s, list matched):
        cdef int leaf, action, slot
        cdef double v
        cdef char m
        frame = state.frame
        records = []
        for leaf in matched:
            self.cur_item = self.leaf_item[leaf]
            record = {}
            for action in range(self.leaf_action_start[leaf], self.leaf_action_end[leaf]):
                self._program(state, self.action_program[action], &v, &m)
                record[self.strings[self.action_slot[action]]] = None if m else _twin._plain(
                    frame.decode(v, self.action_type[action])
                )
            records.append(record)
        if self.stmt_sort[s] >= 0:
            column = self.strings[self.stmt_sort[s]]
            present = [r for r in records if r.get(column) is not None]
            absent = [r for r in records if r.get(column) is None]
            present.sort(key=lambda r: r[column], reverse=bool(self.stmt_descending[s]))
            records = present + absent
        if self.stmt_base[s] >= 0:
            records = records[: int(self.stmt_base[s])]
        slot = self.stmt_slot[s]
        state.value[slot] = frame.encode(records, T_OBJ)
        state.missing[slot] = 0

    cdef _scorecard(self, _State state, int s, str name, list trace):
        cdef double total = self.stmt_base[s]
        cdef int tree, leaf, position = 0, slot
        cdef double v
        cdef char m
        hits = []
        scored = []
        for tree in range(self.stmt_tree_start[s], self.stmt_tree_end[s]):
            self.cur_item = self.tree_item[tree]
            slot = self.tree_slot[tree]
            self._program(state, self.tree_program[tree], &v, &m)
            state.value[slot] = v
            state.missing[slot] = m
            leaf = self._walk(state, self.tree_root[tree])
            if trace is not None:
                hits.append(str(self.leaf_index[leaf]))
            total += self.leaf_points[leaf]
            if self.leaf_reason[leaf] >= 0:
                scored.append((self.tree_best[tree] - self.leaf_points[leaf], position,
                               self.strings[self.leaf_reason[leaf]]))
            position += 1
        if trace is not None:
            trace.append(f"{name}:{','.join(hits)}")
        scored.sort(key=lambda entry: (-entry[0], entry[1]))
        reasons = []
        for _, _, code in scored:
            if code not in reasons:
                reasons.append(code)
        slot = self.stmt_slot[s]
        state.value[slot] = total
        state.missing[slot] = 0
        slot = self.stmt_slot2[s]
        state.value[slot] = state.frame.encode(reasons, T_OBJ)
        state.missing[slot] = 0

    cdef int _walk(self, _State state, int node) except -1:
        cdef double v
        cdef char m
        while self.node_leaf[node] < 0:
            self.cur_item = self.node_item[node]
            self._program(state, self.node_program[node], &v, &m)
            if m:
                node = self.node_missing[node]
            elif v != 0.0:
                node = self.node_true[node]
            else:
                node = self.node_false[node]
        cdef int leaf = self.node_leaf[node]
        if self.leaf_item[leaf] >= 0:
            self.cur_item = self.leaf_item[leaf]
        return leaf

    cdef _actions(self, _State state, int leaf):
        cdef int action, kind, slot
        cdef double v
        cdef char m
        if self.leaf_item[leaf] >= 0:
            self.cur_item = self.leaf_item[leaf]
        for action in range(self.leaf_action_start[leaf], self.leaf_action_end[leaf]):
            kind = self.action_kind[action]
            if kind == A_STOP:
                raise _StopPolicy()
            self._program(state, self.action_program[action], &v, &m)
            if kind == A_SET:
                slot = self.action_slot[action]
                state.value[slot] = v
                state.missing[slot] = m
            elif kind == A_ASSIGN:
                self._assign(state, action, v, m)
            elif kind == A_REASON:
                self._sync(state)
                frame = state.frame
                codes = frame.decode(v, self.action_type[action]) if not m else None
                for code in (codes if isinstance(codes, list) else [codes]):
                    if code is None:
                        raise frame.fail("a reason code is missing", self.action_span[action], output="reasons")
                    if code not in frame.reasons:
                        frame.reasons.append(code)

    cdef _assign(self, _State state, int action, double v, char m):
        cdef int output = self.action_output[action]
        cdef int slot = self.action_slot[action]
        cdef int allowed_set = self.output_allowed_set[output]
        cdef int allowed_range = self.output_allowed_range[output]
        if m:
            if not self.output_optional[output]:
                self._sync(state)
                name = self.arrays.output_names[output]
                raise state.frame.fail(
                    f"output '{name}' would be given a missing value, and it is not optional",
                    self.action_span[action], output=name,
                )
            state.missing[slot] = 1
            return
        if self.slot_types[slot] == T_OBJ:
            frame = state.frame
            v = frame.encode(list(frame.decode(v, T_OBJ)), T_OBJ)
        if (allowed_set >= 0 and not self._in_set(allowed_set, v)) or (
            allowed_range >= 0 and not self._in_range(allowed_range, v)
        ):
            self._sync(state)
            frame = state.frame
            name = self.arrays.output_names[output]
            shown = (
                _twin.show_value(frame.decode(v, self.slot_types[slot])) if self.arrays.reveal_values
                else "this value (not shown: the policy has pii inputs)"
            )
            raise frame.fail(
                f"output '{name}' cannot be {shown}; it must be {self.arrays.output_constraint_text[output]}",
                self.action_span[action], output=name,
            )
        state.value[slot] = v
        state.missing[slot] = 0

    # ----------------------------------------------------------- programs

    cdef bint _in_set(self, int index, double x):
        cdef int low = self.set_start[index], high = self.set_start[index + 1] - 1, middle
        while low <= high:
            middle = (low + high) >> 1
            if self.set_values[middle] == x:
                return True
            if self.set_values[middle] < x:
                low = middle + 1
            else:
                high = middle - 1
        return False

    cdef bint _in_range(self, int index, double x):
        cdef int flags = self.range_flags[index]
        cdef bint above = x >= self.range_low[index] if flags & 1 else x > self.range_low[index]
        cdef bint below = x <= self.range_high[index] if flags & 2 else x < self.range_high[index]
        return above and below

    cdef int _program(self, _State state, int program, double* out, char* out_missing) except -1:
        cdef int start = self.program_start[program]
        cdef int end = self.program_start[program + 1]
        cdef int pc = start, op, top = -1, count, i, flags
        cdef double arg, x, left, right, low, high, result
        cdef char lm, rm, any_missing
        cdef double* stack = state.stack
        cdef char* sm = state.stack_missing
        while pc < end:
            op = self.code_op[pc]
            arg = self.code_arg[pc]
            pc += 1
            if op == OP_CONST:
                top += 1
                stack[top] = arg
                sm[top] = 0
            elif op == OP_LOAD:
                top += 1
                stack[top] = state.value[<int> arg]
                sm[top] = state.missing[<int> arg]
            elif op == OP_MISSING:
                top += 1
                stack[top] = 0.0
                sm[top] = 1
            elif (OP_ADD <= op <= OP_DIV) or (OP_ADD_I <= op <= OP_MUL_I):
                right = stack[top]
                rm = sm[top]
                top -= 1
                left = stack[top]
                if sm[top] or rm:
                    stack[top] = 0.0
                    sm[top] = 1
                    continue
                if op == OP_DIV and right == 0.0:
                    stack[top] = 0.0
                    sm[top] = 1
                    continue
                if op == OP_ADD or op == OP_ADD_I:
                    result = left + right
                elif op == OP_SUB or op == OP_SUB_I:
                    result = left - right
                elif op == OP_MUL or op == OP_MUL_I:
                    result = left * right
                else:
                    result = left / right
                if (op >= OP_ADD_I and fabs(result) >= MAX_EXACT_INT) or (op < OP_ADD_I and not isfinite(result)):
                    # The rare edge: let the twin decide exactly and raise its identical error.
                    self._sync(state)
                    result = _twin._arith(state.frame, op, left, right, pc - 1)
                stack[top] = result
            elif op == OP_NEG or op == OP_NEG_I:
                if not sm[top]:
                    stack[top] = -stack[top]
            elif OP_EQ <= op <= OP_GE:
                right = stack[top]
                rm = sm[top]
                top -= 1
                left = stack[top]
                if sm[top] or rm:
                    stack[top] = 0.0
                    sm[top] = 1
                    continue
                if op == OP_EQ:
                    stack[top] = 1.0 if left == right else 0.0
                elif op == OP_NE:
                    stack[top] = 1.0 if left != right else 0.0
                elif op == OP_LT:
                    stack[top] = 1.0 if left < right else 0.0
                elif op == OP_LE:
                    stack[top] = 1.0 if left <= right else 0.0
                elif op == OP_GT:
                    stack[top] = 1.0 if left > right else 0.0
                else:
                    stack[top] = 1.0 if left >= right else 0.0
            elif op == OP_AND or op == OP_OR:
                right = stack[top]
                rm = sm[top]
                top -= 1
                left = stack[top]
                lm = sm[top]
                x = 0.0 if op == OP_AND else 1.0
                if (not lm and left == x) or (not rm and right == x):
                    stack[top] = x
                    sm[top] = 0
                elif lm or rm:
                    stack[top] = 0.0
                    sm[top] = 1
                else:
                    stack[top] = 1.0 - x
                    sm[top] = 0
            elif op == OP_NOT:
                if not sm[top]:
                    stack[top] = 1.0 - stack[top]
            elif op == OP_IS_MISSING or op == OP_NOT_MISSING:
                stack[top] = 1.0 if (sm[top] != 0) == (op == OP_IS_MISSING) else 0.0
                sm[top] = 0
            elif op == OP_JUMP_UNLESS_TRUE:
                if sm[top] or stack[top] == 0.0:
                    pc = start + <int> arg
                top -= 1
            elif op == OP_JUMP:
                pc = start + <int> arg
            elif op == OP_JUMP_IF_FALSE_KEEP:
                if not sm[top] and stack[top] == 0.0:
                    pc = start + <int> arg
            elif op == OP_JUMP_IF_TRUE_KEEP:
                if not sm[top] and stack[top] != 0.0:
                    pc = start + <int> arg
            elif op == OP_JUMP_IF_MISSING_KEEP:
                if sm[top]:
                    pc = start + <int> arg
            elif op == OP_IN_SET:
                if not sm[top]:
                    stack[top] = 1.0 if self._in_set(<int> arg, stack[top]) else 0.0
            elif op == OP_IN_RANGE:
                if not sm[top]:
                    stack[top] = 1.0 if self._in_range(<int> arg, stack[top]) else 0.0
            elif op == OP_BETWEEN:
                high = stack[top]
                rm = sm[top]
                low = stack[top - 1]
                lm = sm[top - 1]
                top -= 2
                if lm or rm or sm[top]:
                    stack[top] = 0.0
                    sm[top] = 1
                    continue
                x = stack[top]
                flags = <int> arg
                stack[top] = 1.0 if ((x >= low if flags & 1 else x > low) and
                                     (x <= high if flags & 2 else x < high)) else 0.0
            elif op == OP_IN_ITEMS:
                count = <int> arg
                x = stack[top - count]
                any_missing = 0
                result = 0.0
                for i in range(top - count + 1, top + 1):
                    if sm[i]:
                        any_missing = 1
                    elif stack[i] == x:
                        result = 1.0
                top -= count
                if result == 1.0:
                    stack[top] = 1.0
                    sm[top] = 0
                elif any_missing:
                    stack[top] = 0.0
                    sm[top] = 1
                else:
                    stack[top] = 0.0
                    sm[top] = 0
            elif op == OP_MIN or op == OP_MAX or op == OP_COALESCE:
                count = <int> arg
                any_missing = 0
                result = 0.0
                lm = 1  # nothing chosen yet
                for i in range(top - count + 1, top + 1):
                    if op == OP_COALESCE:
                        if lm and not sm[i]:
                            result = stack[i]
                            lm = 0
                    elif sm[i]:
                        any_missing = 1
                    elif lm or (op == OP_MIN and stack[i] < result) or (op == OP_MAX and stack[i] > result):
                        result = stack[i]
                        lm = 0
                top -= count - 1
                if op == OP_COALESCE:
                    stack[top] = result
                    sm[top] = lm
                else:
                    stack[top] = result
                    sm[top] = any_missing
            elif op == OP_ABS or op == OP_ABS_I:
                if not sm[top]:
                    stack[top] = fabs(stack[top])
            elif op == OP_FLOOR or op == OP_CEIL:
                if not sm[top]:
                    result = floor(stack[top]) if op == OP_FLOOR else ceil(stack[top])
                    if fabs(result) > MAX_EXACT_INT:
                        self._sync(state)
                        self._python_op(state, op, stack, sm, top, pc - 1)
                    stack[top] = result
            elif op == OP_CLAMP:
                high = stack[top]
                rm = sm[top]
                low = stack[top - 1]
                lm = sm[top - 1]
                top -= 2
                if sm[top] or lm or rm:
                    stack[top] = 0.0
                    sm[top] = 1
                    continue
                if low > high:
                    self._sync(state)
                    self._clamp_error(state, low, high, <int> arg, pc - 1)
                x = stack[top]
                if x < low:
                    x = low
                if x > high:
                    x = high
                stack[top] = x
            elif op == OP_DAYS_BETWEEN or op == OP_YEARS_BETWEEN:
                right = stack[top]
                rm = sm[top]
                top -= 1
                if sm[top] or rm:
                    stack[top] = 0.0
                    sm[top] = 1
                    continue
                if op == OP_DAYS_BETWEEN:
                    stack[top] = right - stack[top]
                else:
                    self._sync(state)
                    frame = state.frame
                    stack[top] = _twin.years_between(frame.decode(stack[top], T_DATE), frame.decode(right, T_DATE))
            elif op == OP_ESCAPE:
                if self.escape_is_text_list[<int> arg] and not sm[top]:
                    frame = state.frame
                    members = frame.lists.get(self.escape_list_names[<int> arg])
                    if members is not None:
                        x = stack[top]
                        text = self.strings[<int> x] if 0 <= x < self.n_pool else frame.text(x)
                        stack[top] = 1.0 if text in members else 0.0
                        continue
                self._sync(state)
                top = self._escape(state, <int> arg, top, pc - 1)
        out[0] = stack[top]
        out_missing[0] = sm[top]
        return 0

    cdef int _escape(self, _State state, int index, int top, int pc) except -2:
        """Run an escape on the C stack through the twin's Python implementation."""
        cdef int count = len(self.arrays.escapes[index].arg_types), i
        values = [state.stack[i] for i in range(top - count + 1, top + 1)]
        missing = [bool(state.stack_missing[i]) for i in range(top - count + 1, top + 1)]
        _twin.run_escape(state.frame, index, values, missing, pc)
        top = top - count + 1
        state.stack[top] = values[len(values) - 1]
        state.stack_missing[top] = 1 if missing[len(missing) - 1] else 0
        return top

    cdef _python_op(self, _State state, int op, double* stack, char* sm, int top, int pc):
        """floor/ceil beyond ±2**53: the twin raises the identical error."""
        values = [stack[top]]
        missing = [False]
        x = values[0]
        try:
            _twin.check_int(_twin.math.floor(x) if op == OP_FLOOR else _twin.math.ceil(x))
        except _twin.ValueProblem as exc:
            raise _twin._call_failure(state.frame, "floor" if op == OP_FLOOR else "ceil", exc, pc) from None

    cdef _clamp_error(self, _State state, double low, double high, int flags, int pc):
        shown_low = int(low) if flags & 2 else low
        shown_high = int(high) if flags & 4 else high
        problem = _twin.ValueProblem(f"clamp's low bound {shown_low} is above its high bound {shown_high}")
        raise _twin._call_failure(state.frame, "clamp", problem, pc)
