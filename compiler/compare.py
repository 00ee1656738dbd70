"""Two decisions on the same input, compared: what the decision server's replay endpoint reports.

Input: two `Decision`s, `compare_decisions(before, after)`, normally of two versions of one policy on one
record (a logged decision and its replay under a candidate version). Each may carry its `PolicyInfo`
(for statement and item lines and titles) and a trace (None when evaluated with `trace=False`).
Output: a frozen `DecisionComparison`:

- `same`: outputs, reasons and (when both sides have one) trace are identical;
- `outputs`: only the outputs that differ, `{name: {"before": v, "after": v}}`, with `"only_in": "before"`
  or `"after"` (and None on the other side) for an output that only one version has;
- `reasons_added` / `reasons_removed`: in the order of the side that has them; `reasons_reordered` when
  the reasons both sides have are listed in a different order;
- `trace_compared`: both sides have a trace; `divergence`: None when the traces are the same (or were not
  compared), else the first statement, in trace order, where the paths differ (a `Divergence`).

`to_json()` gives plain JSON: spans become 1-based line numbers. Values are compared as JSON values: `1`
and `1.0` are equal, `true` and `1` are not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from compiler.decision import Decision, Hit, trace_record
from compiler.info import PolicyInfo
from dsl.diagnostics import Span

__all__ = ["DecisionComparison", "Divergence", "DivergenceSide", "compare_decisions"]


@dataclass(frozen=True)
class DivergenceSide:
    """One version's side of a divergence: the statement's trace entry there, or why there is none.

    `evaluated` is False when the version has the statement but did not reach it (a `stop` earlier);
    `labels` are then empty. `labels` are the labels of what fired, as the policy's items name them
    (rule "K03", row "2", scorecard bin "2.1" for characteristic 2 bin 1, tree branch path "2.1"); empty
    when nothing fired (the trace's `-`).
    """

    entry: str | None  # the trace string, "knockouts:K03"; None when not evaluated
    evaluated: bool
    hits: tuple[Hit, ...]
    span: Span | None  # the statement's span in this version

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(hit.label for hit in self.hits)

    def to_json(self) -> dict[str, Any]:
        return {
            "labels": list(self.labels),
            "hits": [_hit_json(hit) for hit in self.hits],
            "line": _line(self.span),
            "evaluated": self.evaluated,
            "entry": self.entry,
        }


@dataclass(frozen=True)
class Divergence:
    """The first statement, in trace order, whose trace entries differ.

    A side is None when that version has no such statement (it was added or removed).
    """

    statement: str
    before: DivergenceSide | None
    after: DivergenceSide | None

    def to_json(self) -> dict[str, Any]:
        return {
            "statement": self.statement,
            "before": self.before.to_json() if self.before is not None else None,
            "after": self.after.to_json() if self.after is not None else None,
        }


@dataclass(frozen=True)
class DecisionComparison:
    """What changed between two decisions on the same input (see the module docstring)."""

    same: bool
    outputs: dict[str, dict[str, Any]]
    reasons_added: list[str]
    reasons_removed: list[str]
    reasons_reordered: bool
    trace_compared: bool
    divergence: Divergence | None
    before: dict[str, Any]  # {"policy", "version", "content_hash"} of the before decision
    after: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "same": self.same,
            "before": dict(self.before),
            "after": dict(self.after),
            "outputs": {name: dict(change) for name, change in self.outputs.items()},
            "reasons_added": list(self.reasons_added),
            "reasons_removed": list(self.reasons_removed),
            "reasons_reordered": self.reasons_reordered,
            "trace_compared": self.trace_compared,
            "divergence": self.divergence.to_json() if self.divergence is not None else None,
        }


def compare_decisions(before: Decision, after: Decision) -> DecisionComparison:
    """Compare two decisions on the same input: differing outputs, reasons, and where the traces part."""
    outputs = _output_changes(before.outputs, after.outputs)
    after_set, before_set = set(after.reasons), set(before.reasons)
    reasons_added = [reason for reason in after.reasons if reason not in before_set]
    reasons_removed = [reason for reason in before.reasons if reason not in after_set]
    common_before = [reason for reason in before.reasons if reason in after_set]
    common_after = [reason for reason in after.reasons if reason in before_set]
    trace_compared = before.trace is not None and after.trace is not None
    divergence = None
    if before.trace is not None and after.trace is not None and list(before.trace) != list(after.trace):
        divergence = _divergence(before, after, before.trace, after.trace)
    same = not outputs and list(before.reasons) == list(after.reasons) and divergence is None
    return DecisionComparison(
        same=same,
        outputs=outputs,
        reasons_added=reasons_added,
        reasons_removed=reasons_removed,
        reasons_reordered=common_before != common_after,
        trace_compared=trace_compared,
        divergence=divergence,
        before=_identity(before),
        after=_identity(after),
    )


def _identity(decision: Decision) -> dict[str, Any]:
    return {"policy": decision.policy, "version": decision.version, "content_hash": decision.content_hash}


def _output_changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The outputs that differ, in the before side's order, then the outputs only the after side has."""
    changes: dict[str, dict[str, Any]] = {}
    for name, value in before.items():
        if name not in after:
            changes[name] = {"before": value, "after": None, "only_in": "before"}
        elif not _same_value(value, after[name]):
            changes[name] = {"before": value, "after": after[name]}
    for name, value in after.items():
        if name not in before:
            changes[name] = {"before": None, "after": value, "only_in": "after"}
    return changes


def _same_value(a: Any, b: Any) -> bool:
    """JSON equality: booleans are not numbers, 1 == 1.0, lists and objects compared member by member."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_value(a[key], b[key]) for key in a)
    return type(a) is type(b) and a == b


def _name(entry: str) -> str:
    return entry.partition(":")[0]


def _divergence(before: Decision, after: Decision, before_trace: list[str], after_trace: list[str]) -> Divergence:
    """The first position where the traces differ decides the statement.

    Both traces list the statements evaluated, in source order, until a `stop`; up to the first difference
    they agree. There, if both entries name one statement, its labels differ. If they name different
    statements, one of them is missing from the other version (added or removed) or the statements were
    reordered: a statement the after version added wins over one it removed (before's order breaks ties).
    If one trace ends there, the other trace's next statement is the one (the shorter side stopped, or
    the statement is new).
    """
    position = next(
        (i for i, (b, a) in enumerate(zip(before_trace, after_trace)) if b != a),
        min(len(before_trace), len(after_trace)),
    )
    before_entry = before_trace[position] if position < len(before_trace) else None
    after_entry = after_trace[position] if position < len(after_trace) else None
    if before_entry is None:
        assert after_entry is not None
        name = _name(after_entry)
    elif after_entry is None or _name(before_entry) == _name(after_entry):
        name = _name(before_entry)
    else:
        before_name, after_name = _name(before_entry), _name(after_entry)
        added = not _has_statement(before, before_trace, after_name)
        removed = not _has_statement(after, after_trace, before_name)
        name = after_name if added and not removed else before_name
    return Divergence(name, _side(before, before_trace, name), _side(after, after_trace, name))


def _has_statement(decision: Decision, trace: list[str], name: str) -> bool:
    """Whether the decision's version has the statement (from its info; without one, from its trace)."""
    if decision.info is not None:
        return decision.info.statement(name) is not None
    return any(_name(entry) == name for entry in trace)


def _side(decision: Decision, trace: list[str], name: str) -> DivergenceSide | None:
    if not _has_statement(decision, trace, name):
        return None
    entry = next((entry for entry in trace if _name(entry) == name), None)
    span = _statement_span(decision.info, name)
    if entry is None:
        return DivergenceSide(entry=None, evaluated=False, hits=(), span=span)
    record = trace_record(entry, decision.info)
    return DivergenceSide(entry=entry, evaluated=True, hits=record.fired, span=span)


def _statement_span(info: PolicyInfo | None, name: str) -> Span | None:
    statement = info.statement(name) if info is not None else None
    return statement.span if statement is not None else None


def _line(span: Span | None) -> int | None:
    return span.line if span is not None else None


def _hit_json(hit: Hit) -> dict[str, Any]:
    return {"label": hit.label, "title": hit.title, "line": _line(hit.span)}
