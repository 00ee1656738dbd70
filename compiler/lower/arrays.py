"""Flattening: `Lowered` lists -> `PolicyArrays`, the struct-of-arrays form every evaluator runs.

Input: `compiler.lower.to_trees.Lowered`. Output: `PolicyArrays` — numpy arrays in the
style of scikit-learn's trees (node 0 first, every child id larger than its
parent's, leaves in arrays of their own, an explicit child for a missing
outcome), plus the string pool, the span table (the source map: every
instruction, node item and action points at a line) and the names of slots,
inputs and outputs. A `PolicyArrays` is plain data: it pickles, and
`to_bytes` / `from_bytes` give a versioned, pickle-free binary form.
`validate` checks every index on load, so a corrupt artefact can never make
an evaluator read out of bounds.
"""

from __future__ import annotations

import io
import json
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from compiler.lower import opcodes as O
from compiler.lower.to_trees import Escape, Lowered
from dsl.diagnostics import Span
from dsl.errors import DecideError

MAGIC = b"DECIDE-POLICY\x00"


@dataclass(frozen=True)
class ArrayField:
    """One array of a compiled policy: what it holds, how long it is, and what its values may be.

    `length` names the thing the array has one entry per ("node"; "program+1" for start offsets with a
    final end). `values` names what each entry is: an index of a thing ("slot", "string"...), an offset
    into a thing's array, end included ("action+"), a code of an enumeration ("opcode", "type"...), or
    None for plain numbers. `none` allows -1 ("none of them"). `rule` names a check of its own in
    `PolicyArrays.validate` where the plain bound is not the whole truth. Every evaluator's view of the
    arrays is derived from this table: `PolicyArrays`, its validation, its binary form, the pure-Python
    kernel's lists and the Cython kernel's pointers (`_fastpath.pxd`, checked against it by a test).
    """

    name: str
    dtype: str
    length: str
    values: str | None = None
    none: bool = False
    rule: str | None = None
    meaning: str = ""


# In a fixed order: the binary form relies on it.
ARRAY_TABLE: tuple[ArrayField, ...] = (
    ArrayField("slot_types", "int8", "slot", "type", meaning="the value type of every slot (T_*)"),
    ArrayField("code_op", "int16", "instruction", "opcode", meaning="every instruction's operation (OP_*)"),
    ArrayField("code_arg", "float64", "instruction", rule="by opcode", meaning="its argument: a slot, a constant..."),
    ArrayField("code_span", "int32", "instruction", "span", meaning="the source of every instruction"),
    ArrayField("program_start", "int32", "program+1", "instruction+", rule="ascending", meaning="programs' code"),
    ArrayField("set_values", "float64", "set value", meaning="the members of every constant set, each set sorted"),
    ArrayField("set_start", "int32", "set+1", "set value+", rule="ascending", meaning="where each set starts"),
    ArrayField("range_low", "float64", "range", meaning="each constant interval's low end"),
    ArrayField("range_high", "float64", "range", meaning="its high end"),
    ArrayField("range_flags", "int8", "range", meaning="1 if the low end is closed + 2 if the high end is"),
    ArrayField(
        "node_program", "int32", "node", "program", none=True, rule="tests only", meaning="a test node's program"
    ),
    ArrayField("node_true", "int32", "node", "node", none=True, rule="after parent", meaning="where a true test goes"),
    ArrayField(
        "node_false", "int32", "node", "node", none=True, rule="after parent", meaning="where a false test goes"
    ),
    ArrayField(
        "node_missing", "int32", "node", "node", none=True, rule="after parent", meaning="where a missing test goes"
    ),
    ArrayField("node_leaf", "int32", "node", "leaf", none=True, meaning="the leaf a node is, or -1 for a test"),
    ArrayField("node_item", "int32", "node", "string", none=True, meaning='the rule or row it tests ("rule R01")'),
    ArrayField("leaf_index", "int32", "leaf", meaning="the rule position, row or bin number; -1 for nothing"),
    ArrayField("leaf_label", "int32", "leaf", "string", meaning="what the trace shows for it"),
    ArrayField("leaf_action_start", "int32", "leaf", "action+", meaning="its first action"),
    ArrayField("leaf_action_end", "int32", "leaf", "action+", rule="not before start", meaning="after its last"),
    ArrayField("leaf_points", "float64", "leaf", meaning="a scorecard bin's points"),
    ArrayField("leaf_reason", "int32", "leaf", "string", none=True, meaning="a scorecard bin's reason code"),
    ArrayField("leaf_item", "int32", "leaf", "string", none=True, meaning="the rule, row, bin or branch it is"),
    ArrayField("leaf_span", "int32", "leaf", "span", meaning="its source (explain and the typed trace)"),
    ArrayField("action_kind", "int8", "action", "action kind", meaning="assign, reason, stop, set or field (A_*)"),
    ArrayField("action_slot", "int32", "action", rule="by kind", meaning="the slot set, or a record field's name"),
    ArrayField("action_program", "int32", "action", "program", none=True, rule="all but stop", meaning="its value"),
    ArrayField("action_output", "int32", "action", "output", none=True, rule="assign", meaning="the output"),
    ArrayField("action_span", "int32", "action", "span", meaning="its source"),
    ArrayField("action_type", "int8", "action", "type", meaning="the value type of its program"),
    ArrayField("tree_root", "int32", "tree", "node", meaning="every tree's first node"),
    ArrayField("tree_program", "int32", "tree", "program", none=True, meaning="a characteristic's value program"),
    ArrayField("tree_slot", "int32", "tree", "slot", none=True, rule="with program", meaning="where it goes"),
    ArrayField("tree_best", "float64", "tree", meaning="a characteristic's highest points (reason order)"),
    ArrayField("tree_item", "int32", "tree", "string", none=True, meaning="the rule or row the tree is"),
    ArrayField("stmt_kind", "int8", "statement", "statement kind", meaning="every statement's kind (S_*)"),
    ArrayField("stmt_name", "int32", "statement", "string", meaning="its name"),
    ArrayField("stmt_slot", "int32", "statement", "slot", none=True, rule="by kind", meaning="its value's slot"),
    ArrayField("stmt_slot2", "int32", "statement", "slot", none=True, rule="by kind", meaning="a scorecard's reasons"),
    ArrayField("stmt_program", "int32", "statement", "program", none=True, rule="by kind", meaning="a let's program"),
    ArrayField("stmt_tree_start", "int32", "statement", "tree+", meaning="its first tree"),
    ArrayField("stmt_tree_end", "int32", "statement", "tree+", rule="by kind", meaning="after its last tree"),
    ArrayField("stmt_span", "int32", "statement", "span", meaning="its source"),
    ArrayField("stmt_base", "float64", "statement", meaning="a scorecard's base points; a collect table's limit"),
    ArrayField("stmt_sort", "int32", "statement", "string", none=True, meaning="a collect table's sort column"),
    ArrayField("stmt_descending", "int8", "statement", meaning="1 if it sorts descending"),
    ArrayField("column_slots", "int32", "column", "slot", meaning="the slots of first/unique tables' columns"),
    ArrayField("column_start", "int32", "statement+1", "column+", rule="ascending", meaning="each table's columns"),
    ArrayField("input_slots", "int32", "input", "slot", meaning="every input's slot"),
    ArrayField("output_slots", "int32", "output", "slot", meaning="every output's slot"),
    ArrayField("output_optional", "int8", "output", meaning="1 if the output may be missing"),
    ArrayField("output_default", "float64", "output", meaning="its starting value"),
    ArrayField("output_default_missing", "int8", "output", meaning="0: the default; 1: missing; 2: an empty list"),
    ArrayField("output_allowed_set", "int32", "output", "set", none=True, meaning="its allowed values, as a set"),
    ArrayField("output_allowed_range", "int32", "output", "range", none=True, meaning="or as an interval"),
)

# name -> dtype, in the table's order.
ARRAY_FIELDS: dict[str, str] = {field.name: field.dtype for field in ARRAY_TABLE}

# The highest code of each enumeration a `values` may name.
_ENUMERATIONS = {
    "type": O.T_OBJ,
    "opcode": len(O.OPCODE_NAMES) - 1,
    "action kind": O.A_FIELD,
    "statement kind": O.S_LIST,
}


class CorruptArtefact(DecideError):
    """A compiled policy that fails validation: it is never evaluated."""


class PolicyArrays:
    """A compiled policy's arrays (one attribute per `ARRAY_TABLE` entry) and the names and tables they index."""

    def __init__(
        self,
        *,
        name: str,
        strings: list[str],
        spans: list[Span],
        slot_names: list[str],
        escapes: list[Escape],
        input_names: list[str],
        output_names: list[str],
        output_constraint_text: list[str],
        today_slot: int,
        reveal_values: bool,
        metadata: dict,
        max_stack: int = 1,
        **arrays: np.ndarray,
    ) -> None:
        self.name = name
        self.strings = strings
        self.spans = spans
        self.slot_names = slot_names
        self.escapes = escapes
        self.input_names = input_names
        self.output_names = output_names
        self.output_constraint_text = output_constraint_text
        self.today_slot = today_slot
        self.reveal_values = reveal_values
        self.metadata = metadata  # JSON-able: the policy's description, source and input declarations
        self.max_stack = max_stack  # derived by validate(): the deepest stack any program needs
        if set(arrays) != set(ARRAY_FIELDS):
            unknown, absent = sorted(set(arrays) - set(ARRAY_FIELDS)), sorted(set(ARRAY_FIELDS) - set(arrays))
            raise CorruptArtefact(f"compiled policy '{name}' has unknown arrays {unknown} or lacks {absent}")
        for field in ARRAY_TABLE:
            setattr(self, field.name, arrays[field.name])

    if TYPE_CHECKING:

        def __getattr__(self, name: str) -> np.ndarray: ...  # the arrays of ARRAY_TABLE

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array of `ARRAY_TABLE`, by name, in the table's order."""
        return {field.name: getattr(self, field.name) for field in ARRAY_TABLE}

    @property
    def n_nodes(self) -> int:
        return len(self.node_leaf)

    @property
    def n_slots(self) -> int:
        return len(self.slot_types)

    def statement_nodes(self, statement: int) -> list[int]:
        """Every node reachable from a statement's trees, parents before children (ids ascending)."""
        pending = [
            int(self.tree_root[t])
            for t in range(int(self.stmt_tree_start[statement]), int(self.stmt_tree_end[statement]))
        ]
        seen: set[int] = set()
        while pending:
            node = pending.pop()
            if node in seen:
                continue
            seen.add(node)
            if int(self.node_leaf[node]) < 0:
                pending += [int(self.node_true[node]), int(self.node_false[node]), int(self.node_missing[node])]
        return sorted(seen)

    def nbytes(self) -> int:
        return len(self.to_bytes())

    # ------------------------------------------------------------- validation

    def counts(self) -> dict[str, int]:
        """How many of each thing the arrays describe (the `length` and `values` words of ARRAY_TABLE)."""
        return {
            "slot": len(self.slot_types),
            "instruction": len(self.code_op),
            "program": len(self.program_start) - 1,
            "set": len(self.set_start) - 1,
            "set value": len(self.set_values),
            "range": len(self.range_low),
            "node": len(self.node_leaf),
            "leaf": len(self.leaf_index),
            "action": len(self.action_kind),
            "tree": len(self.tree_root),
            "statement": len(self.stmt_kind),
            "column": len(self.column_slots),
            "input": len(self.input_names),
            "output": len(self.output_names),
            "string": len(self.strings),
            "span": len(self.spans),
        }

    def validate(self) -> PolicyArrays:
        """Check every array against ARRAY_TABLE, then the rules the table names; raise CorruptArtefact on the first
        problem. The Cython kernel indexes without bounds checks: this is what makes that safe."""

        def check(condition: bool, what: str) -> None:
            if not condition:
                raise CorruptArtefact(f"compiled policy '{self.name}' is corrupt: {what}")

        for field in ARRAY_TABLE:
            array = getattr(self, field.name)
            check(
                isinstance(array, np.ndarray) and array.ndim == 1 and array.dtype == np.dtype(field.dtype),
                f"array {field.name} has the wrong shape or type",
            )
        check(
            len(self.program_start) >= 1 and len(self.set_start) >= 1 and len(self.column_start) >= 1,
            "an offsets array is empty",
        )
        counts = self.counts()
        for field in ARRAY_TABLE:
            array = getattr(self, field.name)
            thing, _, plus = field.length.partition("+")
            check(len(array) == counts[thing] + (1 if plus else 0), f"array {field.name} has the wrong length")
            if field.values is None:
                continue
            low = -1 if field.none else 0
            if field.values in _ENUMERATIONS:
                high = _ENUMERATIONS[field.values]
            elif field.values.endswith("+"):
                high = counts[field.values[:-1]]  # an offset: one past the last is the end
            else:
                high = counts[field.values] - 1
            check(_within(array, low, high), f"array {field.name} has a value out of range")
        check(len(self.output_constraint_text) == counts["output"], "output arrays differ")
        check(0 <= self.today_slot < counts["slot"], "today slot out of range")
        self._validate_rules(check, counts)
        return self

    def _validate_rules(self, check, counts: dict[str, int]) -> None:
        """The `rule` column of ARRAY_TABLE: what a plain bound does not say."""
        n_slots, n_strings = counts["slot"], counts["string"]
        # ascending: offsets start at 0, end at the array they index, and never go back.
        for name, end in (
            ("program_start", counts["instruction"]),
            ("set_start", counts["set value"]),
            ("column_start", counts["column"]),
        ):
            offsets = getattr(self, name)
            check(offsets[0] == 0 and offsets[-1] == end and bool(np.all(np.diff(offsets) >= 0)), f"bad {name}")
        # by opcode: every instruction's argument fits its operation; every program's stack use is consistent.
        self.max_stack = 1
        starts = self.program_start
        for program in range(counts["program"]):
            start, end = int(starts[program]), int(starts[program + 1])
            for pc in range(start, end):
                op, arg = int(self.code_op[pc]), self.code_arg[pc]
                if op in _JUMPS:
                    check(pc - start < arg <= end - start and arg == int(arg), "jump out of its program")
                elif op == O.OP_LOAD:
                    check(0 <= arg < n_slots and arg == int(arg), "load from a slot out of range")
                elif op == O.OP_IN_SET:
                    check(0 <= arg < counts["set"], "set out of range")
                elif op == O.OP_IN_RANGE:
                    check(0 <= arg < counts["range"], "range out of range")
                elif op == O.OP_ESCAPE:
                    check(0 <= arg < len(self.escapes), "escape out of range")
                elif op in (O.OP_MIN, O.OP_MAX, O.OP_COALESCE, O.OP_IN_ITEMS):
                    check(1 <= arg <= 1_000 and arg == int(arg), "bad argument count")
            depth = _stack_depth(self, start, end)
            check(depth > 0, "a program's stack use is inconsistent")
            self.max_stack = max(self.max_stack, depth)
        # after parent / tests only: a test node's children come after it (so no cycles), and it has a program.
        n_nodes = counts["node"]
        tests = self.node_leaf < 0
        node_ids = np.arange(n_nodes)
        for child in (self.node_true, self.node_false, self.node_missing):
            check(bool(np.all(~tests | ((child > node_ids) & (child < n_nodes)))), "a child is not after its parent")
        check(bool(np.all(~tests | (self.node_program >= 0))), "test program out of range")
        # not before start.
        check(bool(np.all(self.leaf_action_start <= self.leaf_action_end)), "leaf actions out of range")
        # by kind (actions): assignments and sets name a slot, a record field names a string; all but stop run a
        # program; an assignment names its output.
        kinds = self.action_kind
        assigns = (kinds == O.A_ASSIGN) | (kinds == O.A_SET)
        slot_ok = (self.action_slot >= 0) & (self.action_slot < n_slots)
        string_ok = (self.action_slot >= 0) & (self.action_slot < n_strings)
        check(bool(np.all(~assigns | slot_ok)), "action slot out of range")
        check(bool(np.all((kinds != O.A_FIELD) | string_ok)), "record column name out of range")
        check(bool(np.all((kinds == O.A_STOP) | (self.action_program >= 0))), "action without program")
        check(bool(np.all((kinds != O.A_ASSIGN) | (self.action_output >= 0))), "assignment without its output")
        # with program: a characteristic's value has a slot to go to.
        check(bool(np.all((self.tree_program < 0) | (self.tree_slot >= 0))), "characteristic without a slot")
        # by kind (statements).
        kinds = self.stmt_kind
        check(bool(np.all(self.stmt_tree_start <= self.stmt_tree_end)), "statement trees out of range")
        needs_slot = (kinds == O.S_LET) | (kinds == O.S_SCORECARD) | (kinds == O.S_TABLE_COLLECT)
        check(bool(np.all(~needs_slot | (self.stmt_slot >= 0))), "statement without its slot")
        check(bool(np.all((kinds != O.S_SCORECARD) | (self.stmt_slot2 >= 0))), "scorecard without reasons slot")
        check(bool(np.all((kinds != O.S_LET) | (self.stmt_program >= 0))), "let without program")
        check(bool(np.all((kinds != O.S_TREE) | (self.stmt_tree_end > self.stmt_tree_start))), "tree without root")
        for statement in np.flatnonzero(kinds == O.S_SCORECARD):
            trees = slice(int(self.stmt_tree_start[statement]), int(self.stmt_tree_end[statement]))
            check(
                bool(np.all(self.tree_program[trees] >= 0) and np.all(self.tree_slot[trees] >= 0)),
                "characteristic without its program",
            )

    # ----------------------------------------------------------- binary form

    def to_bytes(self) -> bytes:
        """MAGIC, format version, JSON metadata, then the arrays as .npy records (no pickle)."""
        metadata = {
            "name": self.name,
            "strings": self.strings,
            "spans": [[s.file, s.line, s.column, s.end_line, s.end_column] for s in self.spans],
            "slot_names": self.slot_names,
            "escapes": [[e.name, list(e.arg_types), e.result_type, e.detail] for e in self.escapes],
            "input_names": self.input_names,
            "output_names": self.output_names,
            "output_constraint_text": self.output_constraint_text,
            "today_slot": self.today_slot,
            "reveal_values": self.reveal_values,
            "metadata": self.metadata,
        }
        buffer = io.BytesIO()
        header = json.dumps(metadata, separators=(",", ":")).encode("utf-8")
        buffer.write(MAGIC + struct.pack("<HI", O.FORMAT_VERSION, len(header)) + header)
        for array in self.arrays().values():
            np.save(buffer, array, allow_pickle=False)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> PolicyArrays:
        if not data.startswith(MAGIC):
            raise CorruptArtefact("not a compiled Decide policy (wrong header)")
        offset = len(MAGIC)
        try:
            version, header_length = struct.unpack_from("<HI", data, offset)
        except struct.error:
            raise CorruptArtefact("compiled policy is truncated") from None
        if version != O.FORMAT_VERSION:
            raise CorruptArtefact(
                f"compiled policy has format version {version}; this Decide reads version {O.FORMAT_VERSION}"
            )
        offset += struct.calcsize("<HI")
        try:
            metadata = json.loads(data[offset : offset + header_length].decode("utf-8"))
            stream = io.BytesIO(data[offset + header_length :])
            arrays = {name: np.load(stream, allow_pickle=False) for name in ARRAY_FIELDS}
            policy = cls(
                name=metadata["name"],
                strings=list(metadata["strings"]),
                spans=[Span(*span) for span in metadata["spans"]],
                slot_names=list(metadata["slot_names"]),
                escapes=[Escape(n, tuple(a), r, d) for n, a, r, d in metadata["escapes"]],
                input_names=list(metadata["input_names"]),
                output_names=list(metadata["output_names"]),
                output_constraint_text=list(metadata["output_constraint_text"]),
                today_slot=int(metadata["today_slot"]),
                reveal_values=bool(metadata["reveal_values"]),
                metadata=dict(metadata["metadata"]),
                max_stack=1,
                **arrays,
            )
        except Exception as exc:  # numpy's header parser alone raises half a dozen exception types
            raise CorruptArtefact(f"compiled policy cannot be read: {type(exc).__name__}: {exc}") from None
        return policy.validate()


_POPS_PUSHES = {
    O.OP_CONST: (0, 1),
    O.OP_MISSING: (0, 1),
    O.OP_LOAD: (0, 1),
    O.OP_NEG: (1, 1),
    O.OP_NEG_I: (1, 1),
    O.OP_NOT: (1, 1),
    O.OP_IS_MISSING: (1, 1),
    O.OP_NOT_MISSING: (1, 1),
    O.OP_ABS: (1, 1),
    O.OP_ABS_I: (1, 1),
    O.OP_FLOOR: (1, 1),
    O.OP_CEIL: (1, 1),
    O.OP_IN_SET: (1, 1),
    O.OP_IN_RANGE: (1, 1),
    O.OP_CLAMP: (3, 1),
    O.OP_BETWEEN: (3, 1),
    O.OP_DAYS_BETWEEN: (2, 1),
    O.OP_YEARS_BETWEEN: (2, 1),
}
_BINARY = {
    O.OP_ADD,
    O.OP_SUB,
    O.OP_MUL,
    O.OP_DIV,
    O.OP_ADD_I,
    O.OP_SUB_I,
    O.OP_MUL_I,
    O.OP_EQ,
    O.OP_NE,
    O.OP_LT,
    O.OP_LE,
    O.OP_GT,
    O.OP_GE,
    O.OP_AND,
    O.OP_OR,
}
_JUMPS = {O.OP_JUMP, O.OP_JUMP_UNLESS_TRUE, O.OP_JUMP_IF_FALSE_KEEP, O.OP_JUMP_IF_TRUE_KEEP, O.OP_JUMP_IF_MISSING_KEEP}
_KEEP_JUMPS = {O.OP_JUMP_IF_FALSE_KEEP, O.OP_JUMP_IF_TRUE_KEEP, O.OP_JUMP_IF_MISSING_KEEP}


def _stack_depth(arrays: PolicyArrays, start: int, end: int) -> int:
    """The largest stack a program needs, or 0 if it could pop an empty stack, reach one point with two
    different depths, or end with anything but exactly one value. The Cython kernel sizes its stack
    with this, so a corrupt program can never read or write outside it."""
    depth_at: dict[int, int] = {start: 0}
    pending = [start]
    deepest = 0
    while pending:
        pc = pending.pop()
        depth = depth_at[pc]
        if pc == end:
            if depth != 1:
                return 0
            continue
        op, arg = int(arrays.code_op[pc]), arrays.code_arg[pc]
        successors: list[tuple[int, int]] = []
        if op in _BINARY:
            pops, pushes = 2, 1
        elif op in _POPS_PUSHES:
            pops, pushes = _POPS_PUSHES[op]
        elif op in (O.OP_MIN, O.OP_MAX, O.OP_COALESCE):
            pops, pushes = int(arg), 1
        elif op == O.OP_IN_ITEMS:
            pops, pushes = int(arg) + 1, 1
        elif op == O.OP_ESCAPE:
            pops, pushes = len(arrays.escapes[int(arg)].arg_types), 1
        elif op == O.OP_JUMP:
            pops, pushes = 0, 0
        elif op == O.OP_JUMP_UNLESS_TRUE:
            pops, pushes = 1, 0
        elif op in _KEEP_JUMPS:
            pops, pushes = 1, 1
        else:
            return 0
        if depth < pops:
            return 0
        after = depth - pops + pushes
        deepest = max(deepest, after, depth)
        target = start + int(arg)
        if op == O.OP_JUMP:
            successors.append((target, after))
        elif op == O.OP_JUMP_UNLESS_TRUE or op in _KEEP_JUMPS:
            successors += [(pc + 1, after), (target, after)]
        else:
            successors.append((pc + 1, after))
        for successor, successor_depth in successors:
            if successor in depth_at:
                if depth_at[successor] != successor_depth:
                    return 0
            else:
                depth_at[successor] = successor_depth
                pending.append(successor)
    return deepest


def _within(array: np.ndarray, low: int, high: int) -> bool:
    return bool(array.size == 0 or (array.min() >= low and array.max() <= high))


def compile_arrays(lowered: Lowered, metadata: dict | None = None) -> PolicyArrays:
    """Flatten a lowered policy; nodes are renumbered so that every parent comes before its children."""
    count = len(lowered.node_leaf)
    # Children are always created before their parents, so reversing creation order puts parents first.
    renumber = np.arange(count - 1, -1, -1, dtype=np.int64)

    def node_ref(values: list[int]) -> np.ndarray:
        array = np.asarray(values, dtype=np.int64)
        return np.where(array >= 0, renumber[np.clip(array, 0, max(count - 1, 0))] if count else array, -1).astype(
            np.int32
        )

    def reordered(values: list, dtype: str) -> np.ndarray:
        array = np.asarray(values, dtype=dtype)
        return array[::-1].copy()

    set_start = [0]
    set_values: list[float] = []
    for members in lowered.sets:
        set_values.extend(members)
        set_start.append(len(set_values))
    column_start = [0]
    column_slots: list[int] = []
    for columns in lowered.stmt_columns:
        column_slots.extend(columns)
        column_start.append(len(column_slots))
    # Most arrays are Lowered's lists under the same name; the rest are concatenated or renumbered here.
    renumbered = {"node_program", "node_true", "node_false", "node_missing", "node_leaf", "node_item", "tree_root"}
    arrays = {
        name: getattr(lowered, name) for name in ARRAY_FIELDS if hasattr(lowered, name) and name not in renumbered
    }
    arrays.update(
        set_values=set_values,
        set_start=set_start,
        range_low=[r[0] for r in lowered.ranges],
        range_high=[r[1] for r in lowered.ranges],
        range_flags=[int(r[2]) + 2 * int(r[3]) for r in lowered.ranges],
        column_slots=column_slots,
        column_start=column_start,
    )
    converted = {name: np.asarray(values, dtype=ARRAY_FIELDS[name]) for name, values in arrays.items()}
    converted.update(
        node_program=reordered(lowered.node_program, "int32"),
        node_true=node_ref(lowered.node_true)[::-1].copy(),
        node_false=node_ref(lowered.node_false)[::-1].copy(),
        node_missing=node_ref(lowered.node_missing)[::-1].copy(),
        node_leaf=reordered(lowered.node_leaf, "int32"),
        node_item=reordered(lowered.node_item, "int32"),
        tree_root=node_ref(lowered.tree_root),
    )
    policy = PolicyArrays(
        name=lowered.name,
        strings=list(lowered.strings),
        spans=list(lowered.spans),
        slot_names=list(lowered.slot_names),
        escapes=list(lowered.escapes),
        input_names=list(lowered.input_names),
        output_names=list(lowered.output_names),
        output_constraint_text=list(lowered.output_constraint_text),
        today_slot=lowered.today_slot,
        reveal_values=lowered.reveal_values,
        metadata=dict(metadata or {}),
        max_stack=1,
        **converted,
    )
    return policy.validate()
