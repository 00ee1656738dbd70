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
from dataclasses import dataclass, fields

import numpy as np

from compiler.lower import opcodes as O
from compiler.lower.to_trees import Escape, Lowered
from dsl.diagnostics import Span
from dsl.errors import DecideError

MAGIC = b"DECIDE-POLICY\x00"

# name -> dtype of every array field, in a fixed order (the binary form relies on it).
ARRAY_FIELDS: dict[str, str] = {
    "slot_types": "int8",
    "code_op": "int16",
    "code_arg": "float64",
    "code_span": "int32",
    "program_start": "int32",
    "set_values": "float64",
    "set_start": "int32",
    "range_low": "float64",
    "range_high": "float64",
    "range_flags": "int8",
    "node_program": "int32",
    "node_true": "int32",
    "node_false": "int32",
    "node_missing": "int32",
    "node_leaf": "int32",
    "node_item": "int32",
    "leaf_index": "int32",
    "leaf_label": "int32",
    "leaf_action_start": "int32",
    "leaf_action_end": "int32",
    "leaf_points": "float64",
    "leaf_reason": "int32",
    "leaf_item": "int32",
    "leaf_span": "int32",
    "action_kind": "int8",
    "action_slot": "int32",
    "action_program": "int32",
    "action_output": "int32",
    "action_span": "int32",
    "action_type": "int8",
    "tree_root": "int32",
    "tree_program": "int32",
    "tree_slot": "int32",
    "tree_best": "float64",
    "tree_item": "int32",
    "stmt_kind": "int8",
    "stmt_name": "int32",
    "stmt_slot": "int32",
    "stmt_slot2": "int32",
    "stmt_program": "int32",
    "stmt_tree_start": "int32",
    "stmt_tree_end": "int32",
    "stmt_span": "int32",
    "stmt_base": "float64",
    "stmt_sort": "int32",
    "stmt_descending": "int8",
    "column_slots": "int32",
    "column_start": "int32",
    "input_slots": "int32",
    "output_slots": "int32",
    "output_optional": "int8",
    "output_default": "float64",
    "output_default_missing": "int8",
    "output_allowed_set": "int32",
    "output_allowed_range": "int32",
}


class CorruptArtefact(DecideError):
    """A compiled policy that fails validation: it is never evaluated."""


@dataclass
class PolicyArrays:
    name: str
    strings: list[str]
    spans: list[Span]
    slot_names: list[str]
    escapes: list[Escape]
    input_names: list[str]
    output_names: list[str]
    output_constraint_text: list[str]
    today_slot: int
    reveal_values: bool
    metadata: dict  # JSON-able: input declarations, store lists, source hash, compiler version
    max_stack: int  # derived by validate(): the deepest stack any program needs
    slot_types: np.ndarray
    code_op: np.ndarray
    code_arg: np.ndarray
    code_span: np.ndarray
    program_start: np.ndarray
    set_values: np.ndarray
    set_start: np.ndarray
    range_low: np.ndarray
    range_high: np.ndarray
    range_flags: np.ndarray
    node_program: np.ndarray
    node_true: np.ndarray
    node_false: np.ndarray
    node_missing: np.ndarray
    node_leaf: np.ndarray
    node_item: np.ndarray
    leaf_index: np.ndarray
    leaf_label: np.ndarray
    leaf_action_start: np.ndarray
    leaf_action_end: np.ndarray
    leaf_points: np.ndarray
    leaf_reason: np.ndarray
    leaf_item: np.ndarray
    leaf_span: np.ndarray
    action_kind: np.ndarray
    action_slot: np.ndarray
    action_program: np.ndarray
    action_output: np.ndarray
    action_span: np.ndarray
    action_type: np.ndarray
    tree_root: np.ndarray
    tree_program: np.ndarray
    tree_slot: np.ndarray
    tree_best: np.ndarray
    tree_item: np.ndarray
    stmt_kind: np.ndarray
    stmt_name: np.ndarray
    stmt_slot: np.ndarray
    stmt_slot2: np.ndarray
    stmt_program: np.ndarray
    stmt_tree_start: np.ndarray
    stmt_tree_end: np.ndarray
    stmt_span: np.ndarray
    stmt_base: np.ndarray
    stmt_sort: np.ndarray
    stmt_descending: np.ndarray
    column_slots: np.ndarray
    column_start: np.ndarray
    input_slots: np.ndarray
    output_slots: np.ndarray
    output_optional: np.ndarray
    output_default: np.ndarray
    output_default_missing: np.ndarray
    output_allowed_set: np.ndarray
    output_allowed_range: np.ndarray

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

    def validate(self) -> PolicyArrays:
        """Check every index and the tree order; raise CorruptArtefact on the first problem."""

        def check(condition: bool, what: str) -> None:
            if not condition:
                raise CorruptArtefact(f"compiled policy '{self.name}' is corrupt: {what}")

        lengths = {name: len(getattr(self, name)) for name in ARRAY_FIELDS}
        self.max_stack = 1
        for name, dtype in ARRAY_FIELDS.items():
            array = getattr(self, name)
            check(
                isinstance(array, np.ndarray) and array.ndim == 1 and array.dtype == np.dtype(dtype),
                f"array {name} has the wrong shape or type",
            )
        n_slots, n_code, n_programs = lengths["slot_types"], lengths["code_op"], lengths["program_start"] - 1
        n_nodes, n_leaves, n_actions = lengths["node_leaf"], lengths["leaf_index"], lengths["action_kind"]
        n_sets, n_ranges = lengths["set_start"] - 1, lengths["range_low"]
        n_strings, n_spans, n_trees = len(self.strings), len(self.spans), lengths["tree_root"]
        check(n_programs >= 0 and lengths["code_arg"] == n_code == lengths["code_span"], "code arrays differ")
        check(_within(self.slot_types, 0, O.T_OBJ), "unknown slot type")
        check(0 <= self.today_slot < n_slots, "today slot out of range")
        starts = self.program_start
        check(starts[0] == 0 and starts[-1] == n_code and bool(np.all(np.diff(starts) >= 0)), "bad program bounds")
        check(_within(self.code_op, 0, len(O.OPCODE_NAMES) - 1), "unknown instruction")
        check(_within(self.code_span, 0, n_spans - 1), "instruction span out of range")
        for program in range(n_programs):
            start, end = int(starts[program]), int(starts[program + 1])
            for pc in range(start, end):
                op, arg = int(self.code_op[pc]), self.code_arg[pc]
                if op in (
                    O.OP_JUMP,
                    O.OP_JUMP_UNLESS_TRUE,
                    O.OP_JUMP_IF_FALSE_KEEP,
                    O.OP_JUMP_IF_TRUE_KEEP,
                    O.OP_JUMP_IF_MISSING_KEEP,
                ):
                    check(pc - start < arg <= end - start and arg == int(arg), "jump out of its program")
                elif op == O.OP_LOAD:
                    check(0 <= arg < n_slots and arg == int(arg), "load from a slot out of range")
                elif op == O.OP_IN_SET:
                    check(0 <= arg < n_sets, "set out of range")
                elif op == O.OP_IN_RANGE:
                    check(0 <= arg < n_ranges, "range out of range")
                elif op == O.OP_ESCAPE:
                    check(0 <= arg < len(self.escapes), "escape out of range")
                elif op in (O.OP_MIN, O.OP_MAX, O.OP_COALESCE, O.OP_IN_ITEMS):
                    check(1 <= arg <= 1_000 and arg == int(arg), "bad argument count")
            depth = _stack_depth(self, start, end)
            check(depth > 0, "a program's stack use is inconsistent")
            self.max_stack = max(self.max_stack, depth)
        check(
            self.set_start[0] == 0
            and self.set_start[-1] == len(self.set_values)
            and bool(np.all(np.diff(self.set_start) >= 0)),
            "bad set bounds",
        )
        check(lengths["range_high"] == lengths["range_flags"] == n_ranges, "range arrays differ")
        node_ids = np.arange(n_nodes)
        tests = self.node_leaf < 0
        for child in (self.node_true, self.node_false, self.node_missing):
            check(bool(np.all(~tests | ((child > node_ids) & (child < n_nodes)))), "a child is not after its parent")
        check(bool(np.all(tests | ((self.node_leaf >= 0) & (self.node_leaf < n_leaves)))), "leaf out of range")
        check(
            bool(np.all(~tests | ((self.node_program >= 0) & (self.node_program < n_programs)))),
            "test program out of range",
        )
        check(_within(self.node_item, -1, n_strings - 1), "node item out of range")
        check(
            _within(self.leaf_label, 0, n_strings - 1) and _within(self.leaf_reason, -1, n_strings - 1),
            "leaf string out of range",
        )
        check(
            bool(np.all((self.leaf_action_start <= self.leaf_action_end) & (self.leaf_action_end <= n_actions)))
            and _within(self.leaf_action_start, 0, n_actions),
            "leaf actions out of range",
        )
        check(_within(self.action_kind, 0, O.A_FIELD), "unknown action")
        check(_within(self.action_program, -1, n_programs - 1), "action program out of range")
        assigns = (self.action_kind == O.A_ASSIGN) | (self.action_kind == O.A_SET)
        check(
            bool(np.all(~assigns | ((self.action_slot >= 0) & (self.action_slot < n_slots)))),
            "action slot out of range",
        )
        check(_within(self.action_output, -1, len(self.output_names) - 1), "action output out of range")
        check(_within(self.action_span, 0, n_spans - 1), "action span out of range")
        check(_within(self.action_type, 0, O.T_OBJ) and lengths["action_type"] == n_actions, "action type")
        check(_within(self.tree_root, 0, n_nodes - 1), "tree root out of range")
        check(
            _within(self.tree_program, -1, n_programs - 1) and _within(self.tree_slot, -1, n_slots - 1),
            "tree program out of range",
        )
        check(_within(self.stmt_kind, 0, O.S_LIST), "unknown statement")
        check(
            bool(np.all((self.stmt_tree_start <= self.stmt_tree_end) & (self.stmt_tree_end <= n_trees))),
            "statement trees out of range",
        )
        check(
            _within(self.stmt_slot, -1, n_slots - 1) and _within(self.stmt_slot2, -1, n_slots - 1),
            "statement slot out of range",
        )
        check(_within(self.stmt_program, -1, n_programs - 1), "statement program out of range")
        check(
            self.column_start[-1] == len(self.column_slots) and _within(self.column_slots, 0, n_slots - 1),
            "table columns out of range",
        )
        check(
            _within(self.input_slots, 0, n_slots - 1) and _within(self.output_slots, 0, n_slots - 1),
            "input or output slot out of range",
        )
        check(len(self.input_slots) == len(self.input_names), "inputs differ")
        n_outputs, n_statements = len(self.output_names), lengths["stmt_kind"]
        check(
            all(lengths[name] == n_outputs for name in ARRAY_FIELDS if name.startswith("output_"))
            and len(self.output_constraint_text) == n_outputs,
            "output arrays differ",
        )
        check(
            all(lengths[name] == n_statements for name in ARRAY_FIELDS if name.startswith("stmt_"))
            and lengths["column_start"] == n_statements + 1,
            "statement arrays differ",
        )
        for prefix, count in (("node_", n_nodes), ("leaf_", n_leaves), ("action_", n_actions), ("tree_", n_trees)):
            check(
                all(lengths[name] == count for name in ARRAY_FIELDS if name.startswith(prefix)),
                f"{prefix.rstrip('_')} arrays differ",
            )
        record_fields = self.action_kind == O.A_FIELD
        check(
            bool(np.all(~record_fields | ((self.action_slot >= 0) & (self.action_slot < n_strings)))),
            "record column name out of range",
        )
        check(bool(np.all((self.action_kind == O.A_STOP) | (self.action_program >= 0))), "action without program")
        check(
            _within(self.stmt_name, 0, n_strings - 1)
            and _within(self.stmt_sort, -1, n_strings - 1)
            and _within(self.tree_item, -1, n_strings - 1),
            "statement string out of range",
        )
        check(bool(np.all((self.tree_program < 0) | (self.tree_slot >= 0))), "characteristic without a slot")
        kinds = self.stmt_kind
        needs_slot = (kinds == O.S_LET) | (kinds == O.S_SCORECARD) | (kinds == O.S_TABLE_COLLECT)
        check(bool(np.all(~needs_slot | (self.stmt_slot >= 0))), "statement without its slot")
        check(bool(np.all((kinds != O.S_SCORECARD) | (self.stmt_slot2 >= 0))), "scorecard without reasons slot")
        check(bool(np.all((kinds != O.S_LET) | (self.stmt_program >= 0))), "let without program")
        check(bool(np.all((kinds != O.S_TREE) | (self.stmt_tree_end > self.stmt_tree_start))), "tree without root")
        # Lower bounds too: the kernel indexes without checks, so a negative start would read before an array.
        check(
            _within(self.stmt_tree_start, 0, n_trees) and _within(self.stmt_tree_end, 0, n_trees),
            "statement trees out of range",
        )
        check(
            self.column_start[0] == 0
            and bool(np.all(np.diff(self.column_start) >= 0))
            and _within(self.column_start, 0, len(self.column_slots)),
            "bad table column bounds",
        )
        check(_within(self.leaf_item, -1, n_strings - 1), "leaf item out of range")
        check(_within(self.leaf_span, 0, n_spans - 1), "leaf span out of range")
        check(_within(self.stmt_span, 0, n_spans - 1), "statement span out of range")
        check(_within(self.leaf_action_end, 0, n_actions), "leaf actions out of range")
        assigns_only = self.action_kind == O.A_ASSIGN
        check(bool(np.all(~assigns_only | (self.action_output >= 0))), "assignment without its output")
        for statement in np.flatnonzero(kinds == O.S_SCORECARD):
            trees = slice(int(self.stmt_tree_start[statement]), int(self.stmt_tree_end[statement]))
            check(
                bool(np.all(self.tree_program[trees] >= 0) and np.all(self.tree_slot[trees] >= 0)),
                "characteristic without its program",
            )
        check(
            _within(self.output_allowed_set, -1, n_sets - 1) and _within(self.output_allowed_range, -1, n_ranges - 1),
            "output constraint",
        )
        return self

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
        for name in ARRAY_FIELDS:
            np.save(buffer, getattr(self, name), allow_pickle=False)
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
    assert {f.name for f in fields(PolicyArrays)} >= set(ARRAY_FIELDS)
    return policy.validate()
