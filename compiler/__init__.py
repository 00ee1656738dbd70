"""Checks policies and evaluates them: the typed API that the CLI, the server, the UI and the back-tests use.

`compile_file(path)` / `compile_source(text, filename=...)` return a `Policy`
(or raise `PolicyError` with every diagnostic); `check_source` returns the
diagnostics without raising. A `Policy` has `.info` (`PolicyInfo`: fields,
constraints, lists, statements, JSON Schemas), `.compiled` (`CompiledPolicy`:
bytes, pickling, `content_hash`), `.decide(record, ...)` (a `Decision`),
`.evaluate(...)` (the spec's result object), `.evaluate_batch(table, ...)` and
`.prepare_lists(...)` (`PreparedLists`, built once and shared by every call).
Plugin functions (`FunctionSpec`, from the hooks of `compiler.plugins`) are
passed as `functions=`. docs/api.md documents all of it. Nothing in this
package imports Flask.
"""

from __future__ import annotations

from compiler.compare import DecisionComparison, compare_decisions
from compiler.compiled import COMPILER_VERSION, CompiledPolicy
from compiler.decision import Decision, Hit, TraceRecord
from compiler.evaluate.lists import PreparedList, PreparedLists, prepare_list
from compiler.info import FieldInfo, ItemInfo, ListInfo, PolicyInfo, StatementInfo
from compiler.lower.arrays import CorruptArtefact
from compiler.plugins import FunctionSpec, PluginError
from compiler.policy import Policy, check_source, compile_file, compile_source, read_policy_file
from dsl.diagnostics import Diagnostic, Span
from dsl.errors import DecideError, EvaluationError, FieldError, InputError, PolicyError, PolicySyntaxError

__all__ = [
    "COMPILER_VERSION",
    "CompiledPolicy",
    "CorruptArtefact",
    "DecideError",
    "Decision",
    "DecisionComparison",
    "Diagnostic",
    "EvaluationError",
    "FieldError",
    "FieldInfo",
    "FunctionSpec",
    "Hit",
    "InputError",
    "ItemInfo",
    "ListInfo",
    "PluginError",
    "Policy",
    "PolicyError",
    "PolicyInfo",
    "PolicySyntaxError",
    "PreparedList",
    "PreparedLists",
    "Span",
    "StatementInfo",
    "TraceRecord",
    "check_source",
    "compare_decisions",
    "compile_file",
    "compile_source",
    "prepare_list",
    "read_policy_file",
]
