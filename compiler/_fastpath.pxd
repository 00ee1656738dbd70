"""The Cython kernel's declarations: its numbering, the evaluation machine and the `Runner`.

Like scikit-learn's `_tree.pxd`: the structs and typed fields a reader needs to
follow `_fastpath.pyx`, declared once. Every `const T*` field of `Runner` points
into one array of `compiler.lower.arrays.ARRAY_TABLE`, of the C type that its
dtype names; `tests/test_fastpath.py` checks both against the table.
"""

cimport cython
from cpython.ref cimport PyObject

# Mirrors of compiler/lower/opcodes.py (checked against it by tests/test_fastpath.py).
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


cdef enum:
    # What a native (GIL-free) step reports.
    N_OK = 0
    N_STOP = 1  # `stop`: the policy ends with the outputs as they are
    N_BAIL = 2  # something only the pure-Python kernel can do (an escape, an error message): run the row there

cdef enum:
    # Node tests recognised in a node's program, run without the instruction loop.
    FAST_NONE = 0
    FAST_EQ = 1
    FAST_NE = 2
    FAST_LT = 3
    FAST_LE = 4
    FAST_GT = 5
    FAST_GE = 6
    FAST_RANGE = 7
    FAST_SET = 8
    FAST_IS_MISSING = 9
    FAST_NOT_MISSING = 10

cdef enum:
    # Escapes the native evaluator runs itself (the rest make the row bail).
    E_PYTHON = 0
    E_IN_TEXT_LIST = 1  # a string in a named list
    E_TOP = 2  # top(reason list, n)
    E_LEN_LIST = 3  # len(reason list)
    E_REASONS = 4  # the reasons so far, as a list
    E_IN_TEXT_VALUE = 5  # a string in a reason list
    E_ROUND = 6  # round(number, int): the exact decimal rounding of compiler.values, called under the GIL
    E_ROUND_INT = 7  # round(int, int)

cdef enum:
    REASONS_CAPACITY = 64  # reasons a row may collect on the GIL-free path (more: it bails)
    LISTS_CAPACITY = 64


cdef struct Machine:
    # Slots and the instruction stack (the GIL path uses these too).
    double* value
    char* missing
    double* stack
    char* sm
    # The native path's reasons and lists: string ids, no Python objects.
    int* reasons
    int n_reasons
    int* items  # list items, each list a run of them
    int n_items
    int items_capacity
    int* list_start
    int* list_len
    int n_lists
    double* score_loss  # a scorecard's scored bins, for ordering its reasons
    int* score_code
    # Trace events: -(statement + 1) opens a statement, then the leaves it reached; NULL for no trace.
    int* trace
    int n_trace
    # Named-list membership of every string id of a batch (rows: escapes), or NULL.
    const unsigned char* members
    Py_ssize_t member_ids
    # Borrowed: the named lists and the extra strings of a single evaluation (looked up under the GIL).
    PyObject* lists
    PyObject* extra_strings
    Py_ssize_t n_strings  # string ids are 0..n_strings-1 (the pool, then the strings met in the inputs)




# A machine per evaluation: the only per-call state there is (compiler/evaluate/_vouch.pyx makes them too).
cdef Machine* _machine_new(int n_slots, int max_stack, int n_trees, int n_trace, bint want_trace) except NULL
cdef void _machine_free(Machine* m) noexcept nogil


@cython.final
cdef class Runner:
    cdef object arrays
    cdef list pinned  # the contiguous arrays the pointers below point into
    cdef int n_statements, n_inputs, n_outputs
    cdef int n_slots, max_stack, today_slot
    cdef const signed char* slot_types
    cdef const short* code_op
    cdef const double* code_arg
    cdef const int* code_span
    cdef const int* program_start
    cdef const double* set_values
    cdef const int* set_start
    cdef const double* range_low
    cdef const double* range_high
    cdef const signed char* range_flags
    cdef const int* node_program
    cdef const int* node_true
    cdef const int* node_false
    cdef const int* node_missing
    cdef const int* node_leaf
    cdef const int* node_item
    cdef const int* leaf_index
    cdef const int* leaf_label
    cdef const int* leaf_action_start
    cdef const int* leaf_action_end
    cdef const int* leaf_reason
    cdef const int* leaf_item
    cdef const double* leaf_points
    cdef const int* leaf_span  # not read by the kernel: pinned so that every array of ARRAY_TABLE is here
    cdef const signed char* action_kind
    cdef const signed char* action_type
    cdef const int* action_slot
    cdef const int* action_program
    cdef const int* action_output
    cdef const int* action_span
    cdef const int* tree_root
    cdef const int* tree_program
    cdef const int* tree_slot
    cdef const int* tree_item
    cdef const double* tree_best
    cdef const signed char* stmt_kind
    cdef const signed char* stmt_descending
    cdef const int* stmt_name
    cdef const int* stmt_slot
    cdef const int* stmt_slot2
    cdef const int* stmt_program
    cdef const int* stmt_tree_start
    cdef const int* stmt_tree_end
    cdef const int* stmt_span
    cdef const int* stmt_sort
    cdef const int* column_slots
    cdef const int* column_start
    cdef const int* input_slots
    cdef const int* output_slots
    cdef const double* stmt_base
    cdef const double* output_default
    cdef const signed char* output_optional
    cdef const signed char* output_default_missing
    cdef const int* output_allowed_set
    cdef const int* output_allowed_range
    cdef list strings, input_names, output_names, escape_list_names, leaf_trace
    cdef dict string_ids
    cdef int n_pool
    cdef const signed char* escape_kind
    # Node tests recognised as "slot <op> constant" (or a set, range or missing test): FAST_* per node.
    cdef const signed char* fast_kind
    cdef const int* fast_slot
    cdef const double* fast_arg
    cdef readonly bint native
    cdef readonly bint native_takes_gil  # some escape on the GIL-free path runs Python (round): one thread
    cdef int n_trees, n_trace_events
    cdef dict trace_cache

    cdef _load(self, Machine* m, int slot, value, list extra, dict extra_ids)
    cdef _native_outcome(self, Machine* m, lists, list extra, bint as_json)
    cdef inline str _text(self, int index, list extra)
    cdef list _trace_entries(self, Machine* m)
    cdef list _format_trace(self, tuple events)
    cdef inline int _fast_test(self, Machine* m, int node) noexcept nogil
    cdef int _n_program(self, Machine* m, int program, double* out, char* out_missing) noexcept nogil
    cdef int _n_walk(self, Machine* m, int node, int* leaf) noexcept nogil
    cdef void _n_reset(self, Machine* m, double today) noexcept nogil
    cdef int _n_outputs_ok(self, Machine* m) noexcept nogil
    cdef int _n_statements(self, Machine* m) noexcept nogil
    cdef int _n_statement(self, Machine* m, int s) noexcept nogil
    cdef int _n_scorecard(self, Machine* m, int s) noexcept nogil
    cdef int _n_actions(self, Machine* m, int leaf) noexcept nogil
    cdef inline int _n_add_reason(self, Machine* m, int code) noexcept nogil
    cdef inline bint _in_set(self, int index, double x) noexcept nogil
    cdef inline bint _in_range(self, int index, double x) noexcept nogil
    cdef int _run_code(self, Machine* m, int program, int* top_io) noexcept nogil
    cdef int _native_escape(self, Machine* m, int kind, int index, int* top_io) noexcept nogil
    cdef int _round(self, double* arguments, bint whole)
    cdef int _in_text_list(self, Machine* m, int index, double x)
    cdef inline double _new_list(self, Machine* m, int start, int length) noexcept nogil
