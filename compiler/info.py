"""What a policy is, as data: `PolicyInfo`, and the JSON Schemas of its inputs and outputs.

Input: a checked AST (`policy_info(tree)`), or the JSON of `PolicyInfo.to_json`
(`PolicyInfo.from_json`, as a compiled policy's bytes carry it). Output: the
policy's name, kind, title, description and owner; its inputs and outputs
with types, constraints, `key` and `pii` marks and defaults; its named lists;
its statements with their rules, rows, bins and branches and every source
span. This is the one encoding of input constraints: the validator of a
compiled policy is rebuilt from it, and the CLI, the server and the UI show
it (the JSON Schemas carry `x-pii` and `x-key`).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, replace
from typing import Any

from compiler.check.check_types import allowed_values
from compiler.check.fold_constants import constant_value
from compiler.values import parse_date, to_json
from dsl import ast
from dsl.diagnostics import Span

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_MAX_EXACT_INT = 2**53
_JSON_TYPES = {"int": "integer", "number": "number", "bool": "boolean", "string": "string", "date": "string"}


def _span_json(span: Span | None) -> list | None:
    return None if span is None else [span.file, span.line, span.column, span.end_line, span.end_column]


def _span_from(data: list | None) -> Span | None:
    return None if data is None else Span(*data)


@dataclass(frozen=True)
class FieldInfo:
    """One declared input or output.

    `allowed` is None, `{"values": [...]}` (an `in {...}` set) or `{"low", "high", "low_closed", "high_closed"}`
    (an `in [..]` interval), with values as JSON (dates as YYYY-MM-DD); `default` likewise.
    """

    name: str
    type: str  # int number bool string date list
    element: str | None = None  # for `list of T`
    optional: bool = False
    key: bool = False
    pii: bool = False
    allowed: dict[str, Any] | None = None
    default: Any = None
    span: Span | None = None

    @property
    def type_text(self) -> str:
        """The type as a policy writes it: `int`, `list of string`, `list`."""
        if self.type == "list":
            return f"list of {self.element}" if self.element else "list"
        return self.type

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name, "type": self.type_text, "optional": self.optional}
        if self.key:
            body["key"] = True
        if self.pii:
            body["pii"] = True
        if self.allowed is not None:
            body["allowed"] = self.allowed
        if self.default is not None:
            body["default"] = self.default
        if self.span is not None:
            body["span"] = _span_json(self.span)
        return body

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FieldInfo:
        type_text = data["type"]
        name, _, element = type_text.partition(" of ")
        return cls(
            name=data["name"],
            type=name,
            element=element or None,
            optional=bool(data["optional"]),
            key=bool(data.get("key", False)),
            pii=bool(data.get("pii", False)),
            allowed=data.get("allowed"),
            default=data.get("default"),
            span=_span_from(data.get("span")),
        )

    def _value(self, value: Any) -> Any:
        """A JSON value of this field's type as the evaluator holds it (a date from its YYYY-MM-DD text)."""
        return parse_date(value) if self.type == "date" and isinstance(value, str) else value

    def ast_field(self) -> ast.Field:
        """The declaration as the checker's AST has it (what `InputValidator` reads)."""
        node: ast.SetLiteral | ast.Interval | None = None
        if self.allowed is not None and "values" in self.allowed:
            node = ast.SetLiteral(tuple(_literal_node(self._value(v)) for v in self.allowed["values"]))
        elif self.allowed is not None:
            low, high = self._value(self.allowed["low"]), self._value(self.allowed["high"])
            node = ast.Interval(
                _literal_node(low), _literal_node(high), self.allowed["low_closed"], self.allowed["high_closed"]
            )
        return ast.Field(
            self.name,
            ast.TypeRef(self.type, self.element),
            optional=self.optional,
            key=self.key,
            pii=self.pii,
            allowed=node,
        )

    def json_schema(self) -> dict[str, Any]:
        """This field's JSON Schema (draft 2020-12), with `x-pii` and `x-key`; null allowed when optional."""
        schema = self._value_schema(self.type, self.element)
        if self.allowed is not None and "values" in self.allowed:
            schema["enum"] = list(self.allowed["values"])
        elif self.allowed is not None:
            low, high = self.allowed["low"], self.allowed["high"]
            if self.type == "date":
                # JSON Schema has no date bounds; the interval is stated for tools and people.
                schema["x-date-range"] = dict(self.allowed)
            else:
                schema["exclusiveMinimum" if not self.allowed["low_closed"] else "minimum"] = low
                schema["exclusiveMaximum" if not self.allowed["high_closed"] else "maximum"] = high
        if self.optional:
            if "enum" in schema:
                schema["enum"].append(None)
            schema["type"] = [schema["type"], "null"]
        if self.default is not None:
            schema["default"] = self.default
        if self.pii:
            schema["x-pii"] = True
        if self.key:
            schema["x-key"] = True
        return schema

    @staticmethod
    def _value_schema(type_name: str, element: str | None) -> dict[str, Any]:
        if type_name == "list":
            items = FieldInfo._value_schema(element, None) if element else {"type": "object"}
            return {"type": "array", "items": items}
        schema: dict[str, Any] = {"type": _JSON_TYPES[type_name]}
        if type_name == "date":
            schema["format"] = "date"
        elif type_name in ("int", "number"):
            # Values beyond ±2**53 are refused: a double cannot hold every whole number past it.
            schema["x-max-magnitude"] = _MAX_EXACT_INT
        return schema


def _literal_node(value: Any) -> ast.Expr:
    if isinstance(value, _dt.date):
        return ast.Call("date", (ast.String(value.isoformat()),))
    if isinstance(value, str):
        return ast.String(value)
    if isinstance(value, bool):
        return ast.Bool(value)
    return ast.Number(value)


@dataclass(frozen=True)
class ItemInfo:
    """A rule, table row, scorecard bin or tree branch, by the label its statement's trace entry uses."""

    label: str  # "R01"; row "3"; bin "2.1" (characteristic 2, bin 1); branch path "2.1"
    title: str | None
    span: Span | None

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "title": self.title, "span": _span_json(self.span)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ItemInfo:
        return cls(data["label"], data.get("title"), _span_from(data.get("span")))


@dataclass(frozen=True)
class StatementInfo:
    """One statement: its name, kind ("rules first", "table unique", "scorecard", "tree", "let", "list"),
    its span and the items that can fire."""

    name: str
    kind: str
    span: Span | None
    items: tuple[ItemInfo, ...] = ()

    def item(self, label: str) -> ItemInfo | None:
        return next((item for item in self.items if item.label == label), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "span": _span_json(self.span),
            "items": [item.to_json() for item in self.items],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StatementInfo:
        return cls(
            data["name"],
            data["kind"],
            _span_from(data.get("span")),
            tuple(ItemInfo.from_json(item) for item in data.get("items", ())),
        )


@dataclass(frozen=True)
class ListInfo:
    """A named list: its element type, and whether its members are written in the policy (else supplied)."""

    name: str
    element_type: str
    inline: bool

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "element_type": self.element_type, "inline": self.inline}


@dataclass(frozen=True)
class PolicyInfo:
    """Everything about a policy but its logic: what the API, the UI, the docs and the registry show."""

    name: str
    kind: str
    title: str | None
    description: str | None
    owner: str | None
    inputs: tuple[FieldInfo, ...]
    outputs: tuple[FieldInfo, ...]
    lists: tuple[ListInfo, ...]
    statements: tuple[StatementInfo, ...]

    @property
    def store_lists(self) -> dict[str, str]:
        """The lists whose members the caller supplies, with their element types."""
        return {item.name: item.element_type for item in self.lists if not item.inline}

    @property
    def key_field(self) -> str | None:
        return next((field.name for field in self.inputs if field.key), None)

    @property
    def pii_fields(self) -> tuple[str, ...]:
        return tuple(field.name for field in self.inputs if field.pii)

    def located(self, file: str) -> PolicyInfo:
        """The same info with every span's file renamed to `file` (what a compiled policy carries)."""

        def moved(span: Span | None) -> Span | None:
            return None if span is None else replace(span, file=file)

        def fields(items: tuple[FieldInfo, ...]) -> tuple[FieldInfo, ...]:
            return tuple(replace(item, span=moved(item.span)) for item in items)

        statements = tuple(
            replace(
                statement,
                span=moved(statement.span),
                items=tuple(replace(item, span=moved(item.span)) for item in statement.items),
            )
            for statement in self.statements
        )
        return replace(self, inputs=fields(self.inputs), outputs=fields(self.outputs), statements=statements)

    def statement(self, name: str) -> StatementInfo | None:
        return next((statement for statement in self.statements if statement.name == name), None)

    def input_schema(self) -> dict[str, Any]:
        """JSON Schema (draft 2020-12) of an input record: unknown fields are not allowed."""
        return {
            "$schema": JSON_SCHEMA_DIALECT,
            "title": f"{self.name} input",
            "type": "object",
            "properties": {field.name: field.json_schema() for field in self.inputs},
            "required": [field.name for field in self.inputs if not field.optional],
            "additionalProperties": False,
        }

    def output_schema(self) -> dict[str, Any]:
        """JSON Schema (draft 2020-12) of a result's `outputs`: every output (null when missing) and `reasons`."""
        properties = {field.name: field.json_schema() for field in self.outputs}
        properties["reasons"] = {"type": "array", "items": {"type": "string"}, "uniqueItems": True}
        return {
            "$schema": JSON_SCHEMA_DIALECT,
            "title": f"{self.name} outputs",
            "type": "object",
            "properties": properties,
            "required": list(properties),
            "additionalProperties": False,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "title": self.title,
            "description": self.description,
            "owner": self.owner,
            "inputs": [field.to_json() for field in self.inputs],
            "outputs": [field.to_json() for field in self.outputs],
            "lists": [item.to_json() for item in self.lists],
            "statements": [statement.to_json() for statement in self.statements],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PolicyInfo:
        return cls(
            name=data["name"],
            kind=data["kind"],
            title=data.get("title"),
            description=data.get("description"),
            owner=data.get("owner"),
            inputs=tuple(FieldInfo.from_json(field) for field in data["inputs"]),
            outputs=tuple(FieldInfo.from_json(field) for field in data["outputs"]),
            lists=tuple(ListInfo(item["name"], item["element_type"], item["inline"]) for item in data["lists"]),
            statements=tuple(StatementInfo.from_json(statement) for statement in data["statements"]),
        )


# ----------------------------------------------------------------------------- from the AST


def _field_info(field: ast.Field) -> FieldInfo:
    constraint = allowed_values(field)
    allowed = None
    if constraint is not None:
        shape, spec = constraint
        if shape == "set":
            allowed = {"values": [to_json(value) for value in spec]}  # type: ignore[union-attr]
        else:
            low, high, low_closed, high_closed = spec  # type: ignore[misc]
            allowed = {"low": to_json(low), "high": to_json(high), "low_closed": low_closed, "high_closed": high_closed}
    default = to_json(constant_value(field.default)) if field.default is not None else None
    return FieldInfo(
        name=field.name,
        type=field.type.name,
        element=field.type.element,
        optional=field.optional,
        key=field.key,
        pii=field.pii,
        allowed=allowed,
        default=default,
        span=field.span,
    )


def _branch_items(branches: tuple, prefix: str) -> list[ItemInfo]:
    items: list[ItemInfo] = []
    for position, branch in enumerate(branches, start=1):
        label = f"{prefix}{position}"
        items.append(ItemInfo(label, None, branch.span))
        items.extend(_branch_items(tuple(b for b in branch.body if isinstance(b, ast.Branch)), f"{label}."))
    return items


def _statement_info(statement: ast.Statement) -> StatementInfo:
    if isinstance(statement, ast.Rules):
        items = tuple(ItemInfo(rule.id, rule.label, rule.span) for rule in statement.rules)
        return StatementInfo(statement.name, f"rules {statement.hit}", statement.span, items)
    if isinstance(statement, ast.Table):
        items = tuple(ItemInfo(str(n), None, row.span) for n, row in enumerate(statement.rows, start=1))
        return StatementInfo(statement.name, f"table {statement.hit}", statement.span, items)
    if isinstance(statement, ast.Scorecard):
        items = tuple(
            ItemInfo(f"{c}.{b}", characteristic.label, bin_.span)
            for c, characteristic in enumerate(statement.characteristics, start=1)
            for b, bin_ in enumerate(characteristic.bins, start=1)
        )
        return StatementInfo(statement.name, "scorecard", statement.span, items)
    if isinstance(statement, ast.Tree):
        return StatementInfo(statement.name, "tree", statement.span, tuple(_branch_items(statement.branches, "")))
    if isinstance(statement, ast.Let):
        return StatementInfo(statement.name, "let", statement.span)
    return StatementInfo(statement.name, "list", statement.span)


def policy_info(tree: ast.Policy) -> PolicyInfo:
    """The `PolicyInfo` of a checked policy."""
    header = tree.header
    return PolicyInfo(
        name=header.name,
        kind=header.kind or "generic",
        title=header.title,
        description=header.description,
        owner=header.owner,
        inputs=tuple(_field_info(field) for field in tree.inputs),
        outputs=tuple(_field_info(field) for field in tree.outputs),
        lists=tuple(
            ListInfo(s.name, s.element_type, s.members is not None)
            for s in tree.statements
            if isinstance(s, ast.ListDecl)
        ),
        statements=tuple(_statement_info(statement) for statement in tree.statements),
    )
