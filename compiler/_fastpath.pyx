# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""The Cython kernel: the GIL-free row evaluator of `PolicyArrays`.

Input: validated `PolicyArrays` (every index checked by `validate`, stack
depths included, which is what makes running without bounds checks safe),
then a record (validated, or raw and vouched for here with the validator's
fast checks), the evaluation date and the named lists — or, for a batch,
encoded input columns. Output: the outputs, reasons and trace, exactly as
the pure-Python kernel (`compiler/evaluate/python_kernel.py`) gives them, or
*None* / a bailed row.

It has one job: run rows with no Python object per row (slots, stack,
reasons and reason lists as string ids, the trace as leaf events). At
anything it does not run itself (an escape on strings' text or records, any
evaluation error, a full buffer) it bails, and the caller runs the whole row
on the pure-Python kernel over the same arrays, which words every error.
So there is one definition of the language's semantics beyond this fast
subset, and no per-call state on the `Runner`: every call has its own
`Machine`. The declarations are in `_fastpath.pxd`; what callers may use is
in `_fastpath.pyi`. docs/compiled.md describes it.
"""

from libc.math cimport ceil, fabs, floor, isfinite
cimport cython
from libc.stdlib cimport calloc, free, malloc

import datetime as _dt

import numpy as np

from compiler.lower import opcodes as O
from compiler.lower.arrays import ARRAY_FIELDS, PolicyArrays
from compiler.values import ValueProblem as _ValueProblem, round_half_away as _round_half_away

cdef double MAX_EXACT_INT = 9007199254740992.0
cdef double MAX_ORDINAL = 3652059.0  # date(9999, 12, 31)

NATIVE_REASONS_CAPACITY = REASONS_CAPACITY


def constants():
    """Every number the kernel shares with compiler/lower/opcodes.py, by name (tests/test_fastpath.py compares them)."""
    return {
        "T_NUM": T_NUM,
        "T_INT": T_INT,
        "T_BOOL": T_BOOL,
        "T_STR": T_STR,
        "T_DATE": T_DATE,
        "T_OBJ": T_OBJ,
        "OP_CONST": OP_CONST,
        "OP_MISSING": OP_MISSING,
        "OP_LOAD": OP_LOAD,
        "OP_ADD": OP_ADD,
        "OP_SUB": OP_SUB,
        "OP_MUL": OP_MUL,
        "OP_DIV": OP_DIV,
        "OP_NEG": OP_NEG,
        "OP_ADD_I": OP_ADD_I,
        "OP_SUB_I": OP_SUB_I,
        "OP_MUL_I": OP_MUL_I,
        "OP_NEG_I": OP_NEG_I,
        "OP_EQ": OP_EQ,
        "OP_NE": OP_NE,
        "OP_LT": OP_LT,
        "OP_LE": OP_LE,
        "OP_GT": OP_GT,
        "OP_GE": OP_GE,
        "OP_AND": OP_AND,
        "OP_OR": OP_OR,
        "OP_NOT": OP_NOT,
        "OP_IS_MISSING": OP_IS_MISSING,
        "OP_NOT_MISSING": OP_NOT_MISSING,
        "OP_JUMP_UNLESS_TRUE": OP_JUMP_UNLESS_TRUE,
        "OP_JUMP": OP_JUMP,
        "OP_JUMP_IF_FALSE_KEEP": OP_JUMP_IF_FALSE_KEEP,
        "OP_JUMP_IF_TRUE_KEEP": OP_JUMP_IF_TRUE_KEEP,
        "OP_IN_SET": OP_IN_SET,
        "OP_IN_RANGE": OP_IN_RANGE,
        "OP_MIN": OP_MIN,
        "OP_MAX": OP_MAX,
        "OP_ABS": OP_ABS,
        "OP_ABS_I": OP_ABS_I,
        "OP_FLOOR": OP_FLOOR,
        "OP_CEIL": OP_CEIL,
        "OP_CLAMP": OP_CLAMP,
        "OP_COALESCE": OP_COALESCE,
        "OP_DAYS_BETWEEN": OP_DAYS_BETWEEN,
        "OP_YEARS_BETWEEN": OP_YEARS_BETWEEN,
        "OP_ESCAPE": OP_ESCAPE,
        "OP_BETWEEN": OP_BETWEEN,
        "OP_IN_ITEMS": OP_IN_ITEMS,
        "OP_JUMP_IF_MISSING_KEEP": OP_JUMP_IF_MISSING_KEEP,
        "S_LET": S_LET,
        "S_RULES_FIRST": S_RULES_FIRST,
        "S_RULES_ALL": S_RULES_ALL,
        "S_TABLE_FIRST": S_TABLE_FIRST,
        "S_TABLE_UNIQUE": S_TABLE_UNIQUE,
        "S_TABLE_COLLECT": S_TABLE_COLLECT,
        "S_SCORECARD": S_SCORECARD,
        "S_TREE": S_TREE,
        "S_LIST": S_LIST,
        "A_ASSIGN": A_ASSIGN,
        "A_REASON": A_REASON,
        "A_STOP": A_STOP,
        "A_SET": A_SET,
        "A_FIELD": A_FIELD,
    }


cdef inline int _list_index(Machine* m, double v) noexcept nogil:
    """The list a value names, or -1 (a list index is only ever made by this run)."""
    if 0.0 <= v < m.n_lists and floor(v) == v:
        return <int> v
    return -1


cdef inline bint _is_string_id(Machine* m, double v) noexcept nogil:
    return 0.0 <= v < m.n_strings and floor(v) == v


cdef Machine* _machine_new(int n_slots, int max_stack, int n_trees, int n_trace, bint want_trace) except NULL:
    cdef Machine* m = <Machine*> calloc(1, sizeof(Machine))
    if m == NULL:
        raise MemoryError()
    m.value = <double*> malloc(max(n_slots, 1) * sizeof(double))
    m.missing = <char*> malloc(max(n_slots, 1) * sizeof(char))
    m.stack = <double*> malloc((max_stack + 1) * sizeof(double))
    m.sm = <char*> malloc((max_stack + 1) * sizeof(char))
    m.reasons = <int*> malloc(REASONS_CAPACITY * sizeof(int))
    m.items_capacity = 2 * n_trees + REASONS_CAPACITY
    m.items = <int*> malloc(m.items_capacity * sizeof(int))
    m.list_start = <int*> malloc(LISTS_CAPACITY * sizeof(int))
    m.list_len = <int*> malloc(LISTS_CAPACITY * sizeof(int))
    m.score_loss = <double*> malloc(max(n_trees, 1) * sizeof(double))
    m.score_code = <int*> malloc(max(n_trees, 1) * sizeof(int))
    if want_trace:
        m.trace = <int*> malloc((n_trace + 1) * sizeof(int))
    if (m.value == NULL or m.missing == NULL or m.stack == NULL or m.sm == NULL or m.reasons == NULL
            or m.items == NULL or m.list_start == NULL or m.list_len == NULL or m.score_loss == NULL
            or m.score_code == NULL or (want_trace and m.trace == NULL)):
        _machine_free(m)
        raise MemoryError()
    cdef int i
    for i in range(n_slots):
        m.value[i] = 0.0
        m.missing[i] = 1
    return m


cdef void _machine_free(Machine* m) noexcept nogil:
    if m == NULL:
        return
    free(m.value)
    free(m.missing)
    free(m.stack)
    free(m.sm)
    free(m.reasons)
    free(m.items)
    free(m.list_start)
    free(m.list_len)
    free(m.score_loss)
    free(m.score_code)
    free(m.trace)
    free(m)


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


def _escape_kinds(arrays):
    """E_* for every escape: which ones the GIL-free path runs itself (reason lists, named lists of strings)."""
    kinds = np.zeros(max(len(arrays.escapes), 1), dtype=np.int8)
    native = {
        ("in_list", (T_STR,)): E_IN_TEXT_LIST,
        ("top", (T_OBJ, T_INT)): E_TOP,
        ("len", (T_OBJ,)): E_LEN_LIST,
        ("reasons", ()): E_REASONS,
        ("in_value", (T_STR, T_OBJ)): E_IN_TEXT_VALUE,
        ("round", (T_NUM, T_INT)): E_ROUND,
        ("round", (T_INT, T_INT)): E_ROUND_INT,
    }
    for index, escape in enumerate(arrays.escapes):
        kinds[index] = native.get((escape.name, tuple(escape.arg_types)), E_PYTHON)
    return kinds


_FAST_COMPARE = {O.OP_EQ: FAST_EQ, O.OP_NE: FAST_NE, O.OP_LT: FAST_LT, O.OP_LE: FAST_LE, O.OP_GT: FAST_GT,
                 O.OP_GE: FAST_GE}


def _fast_tests(arrays):
    """The node tests that are one slot against a constant, a set or a range, or a missing test.

    These are most of a lending policy's nodes (`age < 25`, `score in [600..680)`); the walk runs them
    directly. Every recognised form gives a missing result exactly when the slot is missing, as its
    program does (`jump_if_missing_keep` jumps to the program's end with the missing value kept).
    """
    n_nodes = len(arrays.node_leaf)
    kinds = np.zeros(max(n_nodes, 1), dtype=np.int8)
    slots = np.zeros(max(n_nodes, 1), dtype=np.int32)
    args = np.zeros(max(n_nodes, 1), dtype=np.float64)
    for node in range(n_nodes):
        if arrays.node_leaf[node] >= 0:
            continue
        program = int(arrays.node_program[node])
        start, end = int(arrays.program_start[program]), int(arrays.program_start[program + 1])
        code = [(int(arrays.code_op[pc]), float(arrays.code_arg[pc])) for pc in range(start, end)]
        if not code or code[0][0] != O.OP_LOAD:
            continue
        if len(code) > 2 and code[1] == (O.OP_JUMP_IF_MISSING_KEEP, float(len(code))):
            code = [code[0]] + code[2:]
        ops = [op for op, _ in code]
        if len(code) == 3 and ops[1] == O.OP_CONST and ops[2] in _FAST_COMPARE:
            kinds[node], args[node] = _FAST_COMPARE[ops[2]], code[1][1]
        elif len(code) == 2 and ops[1] in (O.OP_IN_SET, O.OP_IN_RANGE):
            kinds[node], args[node] = (FAST_SET if ops[1] == O.OP_IN_SET else FAST_RANGE), code[1][1]
        elif len(code) == 2 and ops[1] in (O.OP_IS_MISSING, O.OP_NOT_MISSING):
            kinds[node] = FAST_IS_MISSING if ops[1] == O.OP_IS_MISSING else FAST_NOT_MISSING
        else:
            continue
        slots[node] = int(code[0][1])
    return kinds, slots, args


def _runs_natively(arrays):
    """Whether rows of this policy can run on the GIL-free path at all.

    Not when a value is a Python object from the start (list inputs or outputs) or a collect table builds
    records: those rows always run on the pure-Python kernel. Everything else is decided per row: a row
    bails to the pure-Python kernel at the first escape or error only it can handle.
    """
    slots = list(arrays.input_slots) + list(arrays.output_slots)
    return (all(arrays.slot_types[slot] != T_OBJ for slot in slots)
            and all(kind != S_TABLE_COLLECT for kind in arrays.stmt_kind))


cdef size_t _pin(list pinned, arrays, str field):
    """The address of a C-contiguous copy (or view) of one of the arrays, of its dtype in ARRAY_FIELDS."""
    return _pin_array(pinned, getattr(arrays, field), ARRAY_FIELDS[field])


cdef size_t _pin_array(list pinned, array, dtype):
    """The address of a C-contiguous copy (or view) of `array`, kept alive in `pinned`; never empty."""
    contiguous = np.ascontiguousarray(array, dtype=dtype)
    if contiguous.size == 0:
        contiguous = np.zeros(1, dtype=dtype)
    pinned.append(contiguous)
    return contiguous.ctypes.data


cdef class Runner:
    """Evaluates one compiled policy on the GIL-free path; immutable after construction, safe to share across threads."""

    def __init__(self, arrays: PolicyArrays):
        self.arrays = arrays
        self.pinned = []
        self.n_statements = len(arrays.stmt_kind)
        self.n_inputs = len(arrays.input_slots)
        self.n_outputs = len(arrays.output_slots)
        self.n_slots = arrays.n_slots
        self.max_stack = arrays.max_stack
        self.today_slot = arrays.today_slot
        self.strings = list(arrays.strings)
        self.n_pool = len(self.strings)
        self.string_ids = {text: index for index, text in enumerate(self.strings)}
        self.escape_list_names = [escape.detail for escape in arrays.escapes]
        fast_kind, fast_slot, fast_arg = _fast_tests(arrays)
        self.escape_kind = <const signed char*> _pin_array(self.pinned, _escape_kinds(arrays), np.int8)
        self.fast_kind = <const signed char*> _pin_array(self.pinned, fast_kind, np.int8)
        self.fast_slot = <const int*> _pin_array(self.pinned, fast_slot, np.int32)
        self.fast_arg = <const double*> _pin_array(self.pinned, fast_arg, np.float64)
        self.native = _runs_natively(arrays)
        self.native_takes_gil = any(
            self.escape_kind[i] == E_ROUND or self.escape_kind[i] == E_ROUND_INT for i in range(len(arrays.escapes))
        )
        self.n_trees = len(arrays.tree_root)
        self.n_trace_events = len(arrays.stmt_kind) + self.n_trees
        self.trace_cache = {}
        self.leaf_trace = _leaf_trace_entries(arrays)
        self.input_names = list(arrays.input_names)
        self.output_names = list(arrays.output_names)
        self.slot_types = <const signed char*> _pin(self.pinned, arrays, "slot_types")
        self.code_op = <const short*> _pin(self.pinned, arrays, "code_op")
        self.code_arg = <const double*> _pin(self.pinned, arrays, "code_arg")
        self.code_span = <const int*> _pin(self.pinned, arrays, "code_span")
        self.program_start = <const int*> _pin(self.pinned, arrays, "program_start")
        self.set_values = <const double*> _pin(self.pinned, arrays, "set_values")
        self.set_start = <const int*> _pin(self.pinned, arrays, "set_start")
        self.range_low = <const double*> _pin(self.pinned, arrays, "range_low")
        self.range_high = <const double*> _pin(self.pinned, arrays, "range_high")
        self.range_flags = <const signed char*> _pin(self.pinned, arrays, "range_flags")
        self.node_program = <const int*> _pin(self.pinned, arrays, "node_program")
        self.node_true = <const int*> _pin(self.pinned, arrays, "node_true")
        self.node_false = <const int*> _pin(self.pinned, arrays, "node_false")
        self.node_missing = <const int*> _pin(self.pinned, arrays, "node_missing")
        self.node_leaf = <const int*> _pin(self.pinned, arrays, "node_leaf")
        self.node_item = <const int*> _pin(self.pinned, arrays, "node_item")
        self.leaf_index = <const int*> _pin(self.pinned, arrays, "leaf_index")
        self.leaf_label = <const int*> _pin(self.pinned, arrays, "leaf_label")
        self.leaf_action_start = <const int*> _pin(self.pinned, arrays, "leaf_action_start")
        self.leaf_action_end = <const int*> _pin(self.pinned, arrays, "leaf_action_end")
        self.leaf_points = <const double*> _pin(self.pinned, arrays, "leaf_points")
        self.leaf_span = <const int*> _pin(self.pinned, arrays, "leaf_span")
        self.leaf_reason = <const int*> _pin(self.pinned, arrays, "leaf_reason")
        self.leaf_item = <const int*> _pin(self.pinned, arrays, "leaf_item")
        self.action_kind = <const signed char*> _pin(self.pinned, arrays, "action_kind")
        self.action_type = <const signed char*> _pin(self.pinned, arrays, "action_type")
        self.action_slot = <const int*> _pin(self.pinned, arrays, "action_slot")
        self.action_program = <const int*> _pin(self.pinned, arrays, "action_program")
        self.action_output = <const int*> _pin(self.pinned, arrays, "action_output")
        self.action_span = <const int*> _pin(self.pinned, arrays, "action_span")
        self.tree_root = <const int*> _pin(self.pinned, arrays, "tree_root")
        self.tree_program = <const int*> _pin(self.pinned, arrays, "tree_program")
        self.tree_slot = <const int*> _pin(self.pinned, arrays, "tree_slot")
        self.tree_item = <const int*> _pin(self.pinned, arrays, "tree_item")
        self.tree_best = <const double*> _pin(self.pinned, arrays, "tree_best")
        self.stmt_kind = <const signed char*> _pin(self.pinned, arrays, "stmt_kind")
        self.stmt_descending = <const signed char*> _pin(self.pinned, arrays, "stmt_descending")
        self.stmt_name = <const int*> _pin(self.pinned, arrays, "stmt_name")
        self.stmt_slot = <const int*> _pin(self.pinned, arrays, "stmt_slot")
        self.stmt_slot2 = <const int*> _pin(self.pinned, arrays, "stmt_slot2")
        self.stmt_program = <const int*> _pin(self.pinned, arrays, "stmt_program")
        self.stmt_tree_start = <const int*> _pin(self.pinned, arrays, "stmt_tree_start")
        self.stmt_tree_end = <const int*> _pin(self.pinned, arrays, "stmt_tree_end")
        self.stmt_span = <const int*> _pin(self.pinned, arrays, "stmt_span")
        self.stmt_sort = <const int*> _pin(self.pinned, arrays, "stmt_sort")
        self.column_slots = <const int*> _pin(self.pinned, arrays, "column_slots")
        self.column_start = <const int*> _pin(self.pinned, arrays, "column_start")
        self.input_slots = <const int*> _pin(self.pinned, arrays, "input_slots")
        self.output_slots = <const int*> _pin(self.pinned, arrays, "output_slots")
        self.stmt_base = <const double*> _pin(self.pinned, arrays, "stmt_base")
        self.output_default = <const double*> _pin(self.pinned, arrays, "output_default")
        self.output_optional = <const signed char*> _pin(self.pinned, arrays, "output_optional")
        self.output_default_missing = <const signed char*> _pin(self.pinned, arrays, "output_default_missing")
        self.output_allowed_set = <const int*> _pin(self.pinned, arrays, "output_allowed_set")
        self.output_allowed_range = <const int*> _pin(self.pinned, arrays, "output_allowed_range")

    # ------------------------------------------------------------- entry

    def evaluate_native(self, dict record, today, lists):
        """One validated record: (outputs including reasons, trace), or None where the row bails."""
        if not self.native:
            return None
        cdef Machine* m = _machine_new(self.n_slots, self.max_stack, self.n_trees, self.n_trace_events, True)
        cdef int i
        cdef list extra = []
        extra_ids = {}
        try:
            self._n_reset(m, <double> today.toordinal())
            for i in range(self.n_inputs):
                value = record.get(self.input_names[i])
                if value is not None:
                    self._load(m, self.input_slots[i], value, extra, extra_ids)
            return self._native_outcome(m, lists, extra, False)
        finally:
            _machine_free(m)

    cdef _load(self, Machine* m, int slot, value, list extra, dict extra_ids):
        """A validated value into its slot (strings interned: the pool's ids, then this record's own)."""
        cdef int type_ = self.slot_types[slot]
        if type_ == T_STR:
            index = self.string_ids.get(value)
            if index is None:
                index = extra_ids.get(value)
                if index is None:
                    index = extra_ids[value] = self.n_pool + len(extra)
                    extra.append(value)
            m.value[slot] = <double> index
        elif type_ == T_NUM or type_ == T_INT:
            m.value[slot] = <double> value
        elif type_ == T_BOOL:
            m.value[slot] = 1.0 if value else 0.0
        else:
            m.value[slot] = <double> value.toordinal()
        m.missing[slot] = 0

    cdef _native_outcome(self, Machine* m, lists, list extra, bint as_json):
        """Run a loaded machine: (outputs with reasons, trace), or None where it bails.

        `as_json` gives the values of the result object (spec §6: whole numbers as ints, dates as
        YYYY-MM-DD), else Python values as `evaluate` returns them.
        """
        cdef int i, slot, type_
        cdef double v
        m.lists = <PyObject*> lists
        m.extra_strings = <PyObject*> extra
        m.n_strings = self.n_pool + len(extra)
        if self._n_statements(m) != N_OK or not self._n_outputs_ok(m):
            return None
        outputs = {}
        for i in range(self.n_outputs):
            slot = self.output_slots[i]
            type_ = self.slot_types[slot]
            v = m.value[slot]
            if m.missing[slot]:
                value = None
            elif type_ == T_NUM:
                value = <long long> v if as_json and floor(v) == v and fabs(v) <= MAX_EXACT_INT else v
            elif type_ == T_INT:
                value = <long long> v
            elif type_ == T_BOOL:
                value = v != 0.0
            elif type_ == T_STR:
                value = self._text(<int> v, extra)
            else:
                value = _dt.date.fromordinal(<int> v)
                if as_json:
                    value = value.isoformat()
            outputs[self.output_names[i]] = value
        outputs["reasons"] = [self._text(m.reasons[i], extra) for i in range(m.n_reasons)]
        return outputs, self._trace_entries(m)

    cdef inline str _text(self, int index, list extra):
        return self.strings[index] if index < self.n_pool else extra[index - self.n_pool]

    cdef list _trace_entries(self, Machine* m):
        """The trace strings of a native run's events (the same events give the same strings: cached)."""
        key = tuple([m.trace[i] for i in range(m.n_trace)])
        entries = self.trace_cache.get(key)
        if entries is None:
            if len(self.trace_cache) >= 4096:
                self.trace_cache.clear()
            entries = self.trace_cache[key] = self._format_trace(key)
        return list(entries)

    cdef list _format_trace(self, tuple events):
        entries = []
        cdef int position = 0, s, kind, n = len(events)
        while position < n:
            s = -events[position] - 1
            position += 1
            leaves = []
            while position < n and events[position] >= 0:
                leaves.append(events[position])
                position += 1
            kind = self.stmt_kind[s]
            name = self.strings[self.stmt_name[s]]
            if kind == S_RULES_FIRST or kind == S_TREE or kind == S_TABLE_FIRST:
                entries.append(self.leaf_trace[leaves[0]] if leaves else f"{name}:-")
            elif kind == S_RULES_ALL:
                entries.append(f"{name}:{','.join([self.strings[self.leaf_label[l]] for l in leaves]) or '-'}")
            else:
                entries.append(f"{name}:{','.join([str(self.leaf_index[l]) for l in leaves]) or '-'}")
        return entries

    def native_rows(self, const double[:, ::1] inputs, const unsigned char[:, ::1] inputs_missing,
                    const double[::1] today, unsigned char[::1] status, double[:, ::1] out_values,
                    unsigned char[:, ::1] out_missing, const unsigned char[:, ::1] members,
                    Py_ssize_t start, Py_ssize_t end, int[::1] reason_count, int[::1] reason_ids,
                    Py_ssize_t n_strings, long long[::1] leaf_events=None, long long[::1] statement_events=None):
        """Rows start..end of encoded input columns on the GIL-free path, with the GIL released.

        `status[row]` is 1 for a row to skip (already an error); a row the path bails on gets 2 and is left
        for the pure-Python kernel. A decided row gets its outputs in `out_values`/`out_missing`, its number of
        reasons in `reason_count` and its reason ids appended to `reason_ids` (room for
        REASONS_CAPACITY per row). `members[escape, string id]` is the named-list membership of every
        string of the batch, and `n_strings` how many string ids there are. With `leaf_events` (one count per
        leaf) and `statement_events` (one per statement), each decided row adds one to every statement it
        evaluated and every leaf of its trace (compiler/hits.py turns them into hit counts). Returns how many
        reason ids were written.
        """
        if not self.native:
            raise ValueError("this policy has no GIL-free path (list inputs or outputs, or a collect table)")
        if not (0 <= start <= end <= today.shape[0] and inputs.shape[1] == today.shape[0] == status.shape[0]
                and reason_count.shape[0] == today.shape[0] and out_values.shape[1] == today.shape[0]
                and inputs.shape[0] == self.n_inputs and out_values.shape[0] == self.n_outputs
                and inputs_missing.shape[0] == inputs.shape[0] and inputs_missing.shape[1] == inputs.shape[1]
                and out_missing.shape[0] == out_values.shape[0] and out_missing.shape[1] == out_values.shape[1]
                and reason_ids.shape[0] >= (end - start) * REASONS_CAPACITY
                and members.shape[0] >= max(len(self.arrays.escapes), 1)):
            raise ValueError("native_rows: the arrays do not fit the policy or each other")
        cdef bint counting = leaf_events is not None
        if counting and (statement_events is None or leaf_events.shape[0] != len(self.arrays.leaf_index)
                         or statement_events.shape[0] != len(self.arrays.stmt_kind)):
            raise ValueError("native_rows: the event counts do not fit the policy")
        cdef Machine* m = _machine_new(self.n_slots, self.max_stack, self.n_trees, self.n_trace_events, counting)
        cdef Py_ssize_t row, written = 0
        cdef int i, slot, event, n_inputs = self.n_inputs, n_outputs = self.n_outputs
        m.n_strings = n_strings
        if members.shape[1] > 0:
            m.members = &members[0, 0]
            m.member_ids = members.shape[1]
        try:
            with nogil:
                for row in range(start, end):
                    if status[row]:
                        continue
                    self._n_reset(m, today[row])
                    for i in range(n_inputs):
                        slot = self.input_slots[i]
                        m.value[slot] = inputs[i, row]
                        m.missing[slot] = inputs_missing[i, row]
                    if self._n_statements(m) != N_OK or not self._n_outputs_ok(m):
                        status[row] = 2
                        continue
                    for i in range(n_outputs):
                        slot = self.output_slots[i]
                        if not m.missing[slot]:
                            out_values[i, row] = m.value[slot]
                            out_missing[i, row] = 0
                    reason_count[row] = m.n_reasons
                    for i in range(m.n_reasons):
                        reason_ids[written] = m.reasons[i]
                        written += 1
                    if counting:
                        for i in range(m.n_trace):
                            event = m.trace[i]
                            if event < 0:
                                statement_events[-event - 1] += 1
                            else:
                                leaf_events[event] += 1
        finally:
            _machine_free(m)
        return written

    # ------------------------------------------------- the GIL-free path

    cdef inline int _fast_test(self, Machine* m, int node) noexcept nogil:
        """A recognised node test: 0 false, 1 true, 2 missing; -1 when the node's program must run."""
        cdef int kind = self.fast_kind[node]
        if kind == FAST_NONE:
            return -1
        cdef int slot = self.fast_slot[node]
        if kind == FAST_IS_MISSING:
            return m.missing[slot] != 0
        if kind == FAST_NOT_MISSING:
            return m.missing[slot] == 0
        if m.missing[slot]:
            return 2
        cdef double x = m.value[slot], c = self.fast_arg[node]
        if kind == FAST_LT:
            return x < c
        if kind == FAST_GE:
            return x >= c
        if kind == FAST_LE:
            return x <= c
        if kind == FAST_GT:
            return x > c
        if kind == FAST_EQ:
            return x == c
        if kind == FAST_NE:
            return x != c
        if kind == FAST_RANGE:
            return self._in_range(<int> c, x)
        return self._in_set(<int> c, x)

    cdef int _n_program(self, Machine* m, int program, double* out, char* out_missing) noexcept nogil:
        cdef int top = -1
        cdef int start = self.program_start[program]
        if self.program_start[program + 1] - start == 1:
            # Most action programs are one constant or one slot (`decision = "decline"`, `score = risk_score`).
            if self.code_op[start] == OP_CONST:
                out[0] = self.code_arg[start]
                out_missing[0] = 0
                return N_OK
            if self.code_op[start] == OP_LOAD:
                out[0] = m.value[<int> self.code_arg[start]]
                out_missing[0] = m.missing[<int> self.code_arg[start]]
                return N_OK
        if self._run_code(m, program, &top) >= 0:
            return N_BAIL
        out[0] = m.stack[top]
        out_missing[0] = m.sm[top]
        return N_OK

    cdef int _n_walk(self, Machine* m, int node, int* leaf) noexcept nogil:
        cdef double v
        cdef char missing
        cdef int outcome
        while self.node_leaf[node] < 0:
            outcome = self._fast_test(m, node)
            if outcome < 0:
                if self._n_program(m, self.node_program[node], &v, &missing) != N_OK:
                    return N_BAIL
                outcome = 2 if missing else (1 if v != 0.0 else 0)
            node = self.node_false[node] if outcome == 0 else (
                self.node_true[node] if outcome == 1 else self.node_missing[node])
        leaf[0] = self.node_leaf[node]
        if m.trace != NULL:
            m.trace[m.n_trace] = leaf[0]
            m.n_trace += 1
        return N_OK

    cdef void _n_reset(self, Machine* m, double today) noexcept nogil:
        """Every slot missing but today's date and the outputs' plain starting values; no reasons or lists."""
        cdef int i, slot
        for i in range(self.n_slots):
            m.value[i] = 0.0
            m.missing[i] = 1
        m.value[self.today_slot] = today
        m.missing[self.today_slot] = 0
        m.n_reasons = 0
        m.n_items = 0
        m.n_lists = 0
        m.n_trace = 0
        for i in range(self.n_outputs):
            if self.output_default_missing[i] == 0:
                slot = self.output_slots[i]
                m.value[slot] = self.output_default[i]
                m.missing[slot] = 0

    cdef int _n_outputs_ok(self, Machine* m) noexcept nogil:
        """Whether every present output decodes (a corrupt artefact could leave, say, a bad string id)."""
        cdef int i, slot, type_
        cdef double v
        for i in range(self.n_outputs):
            slot = self.output_slots[i]
            if m.missing[slot]:
                continue
            type_ = self.slot_types[slot]
            v = m.value[slot]
            if type_ == T_INT and not fabs(v) <= MAX_EXACT_INT:
                return 0
            if type_ == T_STR and not _is_string_id(m, v):
                return 0
            if type_ == T_DATE and not (1.0 <= v <= MAX_ORDINAL and floor(v) == v):
                return 0
        return 1

    cdef int _n_statements(self, Machine* m) noexcept nogil:
        """Every statement of one reset and loaded row: N_OK with the outputs in the slots, or N_BAIL."""
        cdef int s, status
        for s in range(self.n_statements):
            status = self._n_statement(m, s)
            if status == N_STOP:
                return N_OK
            if status != N_OK:
                return N_BAIL
        return N_OK

    cdef int _n_statement(self, Machine* m, int s) noexcept nogil:
        cdef int kind = self.stmt_kind[s]
        cdef int tree, leaf, first, matches, i, status
        cdef double v
        cdef char missing
        if kind == S_LET:
            if self._n_program(m, self.stmt_program[s], &v, &missing) != N_OK:
                return N_BAIL
            m.value[self.stmt_slot[s]] = v
            m.missing[self.stmt_slot[s]] = missing
            return N_OK
        if kind == S_LIST:
            return N_OK
        if kind == S_TABLE_COLLECT:
            return N_BAIL
        if m.trace != NULL:
            m.trace[m.n_trace] = -(s + 1)
            m.n_trace += 1
        if kind == S_SCORECARD:
            return self._n_scorecard(m, s)
        if kind == S_RULES_FIRST or kind == S_TREE:
            if self._n_walk(m, self.tree_root[self.stmt_tree_start[s]], &leaf) != N_OK:
                return N_BAIL
            if kind == S_TREE or self.leaf_index[leaf] >= 0:
                return self._n_actions(m, leaf)
            return N_OK
        if kind == S_RULES_ALL:
            for tree in range(self.stmt_tree_start[s], self.stmt_tree_end[s]):
                if self._n_walk(m, self.tree_root[tree], &leaf) != N_OK:
                    return N_BAIL
                if self.leaf_index[leaf] >= 0:
                    status = self._n_actions(m, leaf)
                    if status != N_OK:
                        return status
                elif m.trace != NULL:
                    m.n_trace -= 1  # a rule that did not fire is not in the trace
            return N_OK
        # Tables (first, unique): every row is tested, as the pure-Python kernel does (a later row may raise).
        first = -1
        matches = 0
        for tree in range(self.stmt_tree_start[s], self.stmt_tree_end[s]):
            if self._n_walk(m, self.tree_root[tree], &leaf) != N_OK:
                return N_BAIL
            if self.leaf_index[leaf] >= 0:
                matches += 1
                if first < 0:
                    first = leaf
            elif m.trace != NULL:
                m.n_trace -= 1
        if kind == S_TABLE_UNIQUE and matches > 1:
            return N_BAIL  # the pure-Python kernel words the error
        if first >= 0:
            return self._n_actions(m, first)
        for i in range(self.column_start[s], self.column_start[s + 1]):
            m.missing[self.column_slots[i]] = 1
        return N_OK

    cdef int _n_scorecard(self, Machine* m, int s) noexcept nogil:
        cdef double total = self.stmt_base[s], v, loss
        cdef int tree, leaf, slot, n_scored = 0, i, j, position, code, start
        cdef char missing
        for tree in range(self.stmt_tree_start[s], self.stmt_tree_end[s]):
            slot = self.tree_slot[tree]
            if self._n_program(m, self.tree_program[tree], &v, &missing) != N_OK:
                return N_BAIL
            m.value[slot] = v
            m.missing[slot] = missing
            if self._n_walk(m, self.tree_root[tree], &leaf) != N_OK:
                return N_BAIL
            total += self.leaf_points[leaf]
            if self.leaf_reason[leaf] >= 0:
                # Insert in order of points lost (most first), earlier characteristics first on ties.
                loss = self.tree_best[tree] - self.leaf_points[leaf]
                i = n_scored
                while i > 0 and m.score_loss[i - 1] < loss:
                    m.score_loss[i] = m.score_loss[i - 1]
                    m.score_code[i] = m.score_code[i - 1]
                    i -= 1
                m.score_loss[i] = loss
                m.score_code[i] = self.leaf_reason[leaf]
                n_scored += 1
        if m.n_lists >= LISTS_CAPACITY or m.n_items + n_scored > m.items_capacity:
            return N_BAIL
        start = m.n_items
        for i in range(n_scored):
            code = m.score_code[i]
            for j in range(start, m.n_items):
                if m.items[j] == code:
                    break
            else:
                m.items[m.n_items] = code
                m.n_items += 1
        m.value[self.stmt_slot[s]] = total
        m.missing[self.stmt_slot[s]] = 0
        m.value[self.stmt_slot2[s]] = self._new_list(m, start, m.n_items - start)
        m.missing[self.stmt_slot2[s]] = 0
        return N_OK

    cdef int _n_actions(self, Machine* m, int leaf) noexcept nogil:
        cdef int action, kind, slot, output, i, lst
        cdef double v
        cdef char missing
        for action in range(self.leaf_action_start[leaf], self.leaf_action_end[leaf]):
            kind = self.action_kind[action]
            if kind == A_STOP:
                return N_STOP
            if kind == A_FIELD or self._n_program(m, self.action_program[action], &v, &missing) != N_OK:
                return N_BAIL
            slot = self.action_slot[action]
            if kind == A_SET:
                m.value[slot] = v
                m.missing[slot] = missing
            elif kind == A_ASSIGN:
                output = self.action_output[action]
                if missing:
                    if not self.output_optional[output]:
                        return N_BAIL
                    m.missing[slot] = 1
                    continue
                if ((self.output_allowed_set[output] >= 0 and not self._in_set(self.output_allowed_set[output], v))
                        or (self.output_allowed_range[output] >= 0
                            and not self._in_range(self.output_allowed_range[output], v))):
                    return N_BAIL
                m.value[slot] = v
                m.missing[slot] = 0
            else:  # A_REASON
                if missing:
                    return N_BAIL
                if self.action_type[action] == T_STR:
                    if not _is_string_id(m, v) or self._n_add_reason(m, <int> v) != N_OK:
                        return N_BAIL
                elif self.action_type[action] == T_OBJ:
                    lst = _list_index(m, v)
                    if lst < 0:
                        return N_BAIL
                    for i in range(m.list_start[lst], m.list_start[lst] + m.list_len[lst]):
                        if self._n_add_reason(m, m.items[i]) != N_OK:
                            return N_BAIL
                else:
                    return N_BAIL
        return N_OK

    cdef inline int _n_add_reason(self, Machine* m, int code) noexcept nogil:
        cdef int i
        for i in range(m.n_reasons):
            if m.reasons[i] == code:
                return N_OK
        if m.n_reasons >= REASONS_CAPACITY:
            return N_BAIL
        m.reasons[m.n_reasons] = code
        m.n_reasons += 1
        return N_OK

    # ----------------------------------------------------------- programs

    cdef inline bint _in_set(self, int index, double x) noexcept nogil:
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

    cdef inline bint _in_range(self, int index, double x) noexcept nogil:
        cdef int flags = self.range_flags[index]
        cdef bint above = x >= self.range_low[index] if flags & 1 else x > self.range_low[index]
        cdef bint below = x <= self.range_high[index] if flags & 2 else x < self.range_high[index]
        return above and below

    cdef int _run_code(self, Machine* m, int program, int* top_io) noexcept nogil:
        """Run a program on the machine's stack; -1 when it is done, else the pc of the instruction the row
        bails at (an escape this path does not run, or one that would raise an evaluation error)."""
        cdef int start = self.program_start[program]
        cdef int end = self.program_start[program + 1]
        cdef int op, top = top_io[0], count, i, flags, kind, pc = start
        cdef double arg, x, left, right, low, high, result
        cdef char lm, rm, any_missing
        cdef double* stack = m.stack
        cdef char* sm = m.sm
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
                stack[top] = m.value[<int> arg]
                sm[top] = m.missing[<int> arg]
            elif op == OP_MISSING:
                top += 1
                stack[top] = 0.0
                sm[top] = 1
            elif (op == OP_ADD or op == OP_SUB or op == OP_MUL or op == OP_DIV or op == OP_ADD_I or op == OP_SUB_I
                  or op == OP_MUL_I):
                right = stack[top]
                left = stack[top - 1]
                if sm[top - 1] or sm[top] or (op == OP_DIV and right == 0.0):
                    top -= 1
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
                    top_io[0] = top
                    return pc - 1
                top -= 1
                stack[top] = result
            elif op == OP_NEG or op == OP_NEG_I:
                if not sm[top]:
                    stack[top] = -stack[top]
            elif op == OP_EQ or op == OP_NE or op == OP_LT or op == OP_LE or op == OP_GT or op == OP_GE:
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
                stack[top] = result
                sm[top] = lm if op == OP_COALESCE else any_missing
            elif op == OP_ABS or op == OP_ABS_I:
                if not sm[top]:
                    stack[top] = fabs(stack[top])
            elif op == OP_FLOOR or op == OP_CEIL:
                if not sm[top]:
                    result = floor(stack[top]) if op == OP_FLOOR else ceil(stack[top])
                    if fabs(result) > MAX_EXACT_INT:
                        top_io[0] = top
                        return pc - 1
                    stack[top] = result
            elif op == OP_CLAMP:
                if sm[top] or sm[top - 1] or sm[top - 2]:
                    top -= 2
                    stack[top] = 0.0
                    sm[top] = 1
                    continue
                high = stack[top]
                low = stack[top - 1]
                if low > high:
                    top_io[0] = top
                    return pc - 1
                top -= 2
                x = stack[top]
                if x < low:
                    x = low
                if x > high:
                    x = high
                stack[top] = x
            elif op == OP_DAYS_BETWEEN or op == OP_YEARS_BETWEEN:
                if sm[top] or sm[top - 1]:
                    top -= 1
                    stack[top] = 0.0
                    sm[top] = 1
                    continue
                if op == OP_YEARS_BETWEEN:
                    top_io[0] = top
                    return pc - 1
                top -= 1
                stack[top] = stack[top + 1] - stack[top]
            elif op == OP_ESCAPE:
                kind = self.escape_kind[<int> arg]
                if kind == E_PYTHON or self._native_escape(m, kind, <int> arg, &top) != N_OK:
                    top_io[0] = top
                    return pc - 1
        top_io[0] = top
        return -1

    cdef int _native_escape(self, Machine* m, int kind, int index, int* top_io) noexcept nogil:
        """The escapes the GIL-free path runs itself; N_BAIL (stack untouched) for anything it cannot."""
        cdef int top = top_io[0], i, lst, n, start, found
        cdef double* stack = m.stack
        cdef char* sm = m.sm
        if kind == E_REASONS:
            if m.n_lists >= LISTS_CAPACITY or m.n_items + m.n_reasons > m.items_capacity:
                return N_BAIL
            for i in range(m.n_reasons):
                m.items[m.n_items + i] = m.reasons[i]
            top += 1
            stack[top] = self._new_list(m, m.n_items, m.n_reasons)
            sm[top] = 0
            m.n_items += m.n_reasons
            top_io[0] = top
            return N_OK
        if kind == E_TOP:
            if sm[top] or sm[top - 1]:
                top -= 1
                stack[top] = 0.0
                sm[top] = 1
                top_io[0] = top
                return N_OK
            if m.n_lists >= LISTS_CAPACITY:
                return N_BAIL
            lst = _list_index(m, stack[top - 1])
            if lst < 0:
                return N_BAIL
            n = m.list_len[lst]
            if stack[top] < n:
                n = 0 if stack[top] < 0 else <int> stack[top]
            top -= 1
            stack[top] = self._new_list(m, m.list_start[lst], n)
            top_io[0] = top
            return N_OK
        if kind == E_LEN_LIST:
            if not sm[top]:
                lst = _list_index(m, stack[top])
                if lst < 0:
                    return N_BAIL
                stack[top] = m.list_len[lst]
            return N_OK
        if kind == E_ROUND or kind == E_ROUND_INT:
            if sm[top] or sm[top - 1]:
                top -= 1
                stack[top] = 0.0
                sm[top] = 1
                top_io[0] = top
                return N_OK
            with gil:
                found = self._round(stack + top - 1, kind == E_ROUND_INT)
            if found < 0:
                return N_BAIL
            top_io[0] = top - 1
            return N_OK
        if kind == E_IN_TEXT_VALUE:
            if sm[top] or sm[top - 1]:
                top -= 1
                stack[top] = 0.0
                sm[top] = 1
                top_io[0] = top
                return N_OK
            lst = _list_index(m, stack[top])
            if lst < 0:
                return N_BAIL
            start = m.list_start[lst]
            found = 0
            for i in range(start, start + m.list_len[lst]):
                if m.items[i] == <int> stack[top - 1]:
                    found = 1
            top -= 1
            stack[top] = found
            top_io[0] = top
            return N_OK
        # E_IN_TEXT_LIST
        if sm[top]:
            return N_OK
        if m.members != NULL and 0 <= stack[top] < m.member_ids:
            stack[top] = m.members[index * m.member_ids + <Py_ssize_t> stack[top]]
            return N_OK
        if m.lists == NULL:
            return N_BAIL
        with gil:
            found = self._in_text_list(m, index, stack[top])
        if found < 0:
            return N_BAIL
        stack[top] = found
        return N_OK

    cdef int _round(self, double* arguments, bint whole):
        """round() on the stack's two top values, in place (the result where the first was); -1 to bail."""
        if not (fabs(arguments[0]) <= MAX_EXACT_INT and fabs(arguments[1]) <= MAX_EXACT_INT):
            return -1
        value = <long long> arguments[0] if whole else arguments[0]
        try:
            arguments[0] = _round_half_away(value, <long long> arguments[1])
        except _ValueProblem:
            return -1  # the pure-Python kernel words the error
        return 0

    cdef int _in_text_list(self, Machine* m, int index, double x):
        """A string's membership of a named list, under the GIL: 1, 0, or -1 when the list is not there."""
        members = (<object> m.lists).get(self.escape_list_names[index])
        if members is None or not _is_string_id(m, x):
            return -1
        cdef int i = <int> x
        text = self.strings[i] if i < self.n_pool else (<object> m.extra_strings)[i - self.n_pool]
        return 1 if text in members else 0

    cdef inline double _new_list(self, Machine* m, int start, int length) noexcept nogil:
        m.list_start[m.n_lists] = start
        m.list_len[m.n_lists] = length
        m.n_lists += 1
        return m.n_lists - 1
