"""The numbering shared by the lowering, the array evaluator and the Cython kernel.

Input: nothing. Output: integer codes for value types, instructions,
statement kinds, tree node outcomes and actions. Changing a number here
changes the compiled format: bump `FORMAT_VERSION` with it.
"""

from __future__ import annotations

FORMAT_VERSION = 2

# Value types of slots and stack entries (every value is a float64 plus a missing flag).
T_NUM, T_INT, T_BOOL, T_STR, T_DATE, T_OBJ = range(6)
TYPE_NAMES = ("number", "int", "bool", "string", "date", "object")

# Instructions of expression programs: (op, arg) pairs run on a value stack.
(
    OP_CONST,  # push arg
    OP_MISSING,  # push missing
    OP_LOAD,  # push slot[arg]
    OP_ADD,
    OP_SUB,
    OP_MUL,
    OP_DIV,  # division by zero gives missing
    OP_NEG,
    OP_ADD_I,  # int arithmetic: result beyond ±2**53 is an evaluation error
    OP_SUB_I,
    OP_MUL_I,
    OP_NEG_I,
    OP_EQ,
    OP_NE,
    OP_LT,
    OP_LE,
    OP_GT,
    OP_GE,
    OP_AND,  # Kleene and of the two top values
    OP_OR,
    OP_NOT,
    OP_IS_MISSING,
    OP_NOT_MISSING,
    OP_JUMP_UNLESS_TRUE,  # pop; jump to arg unless the value was true
    OP_JUMP,
    OP_JUMP_IF_FALSE_KEEP,  # `and` short circuit: keep a false top and jump
    OP_JUMP_IF_TRUE_KEEP,  # `or` short circuit
    OP_IN_SET,  # arg = set index
    OP_IN_RANGE,  # arg = range index
    OP_MIN,  # arg = argument count
    OP_MAX,
    OP_ABS,
    OP_ABS_I,
    OP_FLOOR,
    OP_CEIL,
    OP_CLAMP,
    OP_COALESCE,  # arg = argument count
    OP_DAYS_BETWEEN,
    OP_YEARS_BETWEEN,
    OP_ESCAPE,  # arg = escape index: a Python function for strings, lists and records
    OP_BETWEEN,  # pop x, low, high; arg = 1 if the low end is closed + 2 if the high end is closed
    OP_IN_ITEMS,  # pop x and arg items: true if one equals x, else missing if one is missing, else false
    OP_JUMP_IF_MISSING_KEEP,  # keep a missing top and jump (the rest of the test is not evaluated)
) = range(43)

OPCODE_NAMES = (
    "const missing load add sub mul div neg add_i sub_i mul_i neg_i eq ne lt le gt ge and or not is_missing "
    "not_missing jump_unless_true jump jump_if_false_keep jump_if_true_keep in_set in_range min max abs abs_i "
    "floor ceil clamp coalesce days_between years_between escape between in_items jump_if_missing_keep"
).split()

# Statements.
(S_LET, S_RULES_FIRST, S_RULES_ALL, S_TABLE_FIRST, S_TABLE_UNIQUE, S_TABLE_COLLECT, S_SCORECARD, S_TREE, S_LIST) = (
    range(9)
)
STATEMENT_NAMES = (
    "let",
    "rules first",
    "rules all",
    "table first",
    "table unique",
    "table collect",
    "scorecard",
    "tree",
    "list",
)

# Tree nodes: a test node runs its program and goes to the true / false / missing child; a leaf has none.
LEAF = -1

# Actions run at leaves.
A_ASSIGN, A_REASON, A_STOP, A_SET, A_FIELD = range(5)
ACTION_NAMES = ("assign", "reason", "stop", "set", "field")

MAX_EXACT_INT = 2**53
