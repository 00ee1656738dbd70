"""A decision as a typed value: `Decision`, with its trace as records that point at the policy's source.

Input: the result object an evaluator builds (spec §6: policy, version,
outputs with `reasons`, trace strings), the policy's `PolicyInfo`, its
content hash and the engine that decided. Output: a `Decision` whose
`to_json()` is that result object exactly, and whose `trace_records` say,
for every statement that ran, what fired (rule, row, bin or branch) with
its title and source span.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from compiler.info import PolicyInfo
from dsl.diagnostics import Span


@dataclass(frozen=True)
class Hit:
    """One rule, table row, scorecard bin or tree branch that fired."""

    label: str  # "R01"; row "3"; bin "2.1" (characteristic 2, bin 1); branch path "2.1"
    title: str | None
    span: Span | None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"label": self.label}
        if self.title is not None:
            body["title"] = self.title
        if self.span is not None:
            body["line"] = self.span.line
        return body


@dataclass(frozen=True)
class TraceRecord:
    """One entry of the trace: a statement, its kind, what fired in it, and the spec's "NAME:LABELS" text."""

    statement: str
    kind: str
    fired: tuple[Hit, ...]
    span: Span | None
    text: str

    def to_json(self) -> dict[str, Any]:
        return {
            "statement": self.statement,
            "kind": self.kind,
            "fired": [hit.to_json() for hit in self.fired],
            "line": self.span.line if self.span is not None else None,
        }


@dataclass(frozen=True)
class Decision:
    """The outcome of one evaluation.

    `outputs` holds every output as a JSON value (whole numbers as ints, dates as YYYY-MM-DD, missing as
    None), without `reasons`; `reasons` is the ordered, distinct reason codes; `trace` the spec's trace
    strings (None when not asked for). `engine` is "cython", "python" (the pure-Python kernel) or
    "reference" (the reference interpreter).
    """

    policy: str
    outputs: dict[str, Any]
    reasons: list[str]
    trace: list[str] | None
    content_hash: str
    engine: str
    version: int | None = None
    info: PolicyInfo | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_result(
        cls, result: dict[str, Any], *, content_hash: str, engine: str, info: PolicyInfo | None = None
    ) -> Decision:
        outputs = dict(result["outputs"])
        reasons = outputs.pop("reasons")
        return cls(
            policy=result["policy"],
            outputs=outputs,
            reasons=reasons,
            trace=result.get("trace"),
            content_hash=content_hash,
            engine=engine,
            version=result.get("version"),
            info=info,
        )

    def to_json(self) -> dict[str, Any]:
        """The result object of spec §6, exactly as `evaluate` returns it."""
        result: dict[str, Any] = {"policy": self.policy}
        if self.version is not None:
            result["version"] = self.version
        result["outputs"] = {**self.outputs, "reasons": list(self.reasons)}
        if self.trace is not None:
            result["trace"] = list(self.trace)
        return result

    @property
    def trace_records(self) -> tuple[TraceRecord, ...]:
        """The trace as records, each hit with its title and span (empty without a trace)."""
        if self.trace is None:
            return ()
        return tuple(trace_record(entry, self.info) for entry in self.trace)


def trace_record(entry: str, info: PolicyInfo | None) -> TraceRecord:
    """One "NAME:LABELS" trace string as a record, looked up in the policy's statements."""
    name, _, labels = entry.partition(":")
    statement = info.statement(name) if info is not None else None
    kind = statement.kind if statement is not None else "unknown"
    fired: list[Hit] = []
    if labels and labels != "-":
        parts = labels.split(",")
        if kind == "scorecard":
            # A scorecard's entry lists the bin hit in each characteristic, in order.
            parts = [f"{position}.{bin_}" for position, bin_ in enumerate(parts, start=1)]
        for label in parts:
            item = statement.item(label) if statement is not None else None
            fired.append(Hit(label, item.title if item else None, item.span if item else None))
    return TraceRecord(name, kind, tuple(fired), statement.span if statement is not None else None, entry)
