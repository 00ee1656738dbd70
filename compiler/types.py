"""The type model shared by the checker, the evaluators and input validation.

Input: type names from the AST (`TypeRef`), or written out as a plugin
function declares them (`"list of int"`). Output: `Type` values with the
widening rule of spec §4 (`int` widens to `number`) and readable names for
error messages.
"""

from __future__ import annotations

from dataclasses import dataclass

from dsl import ast


@dataclass(frozen=True, slots=True)
class Type:
    kind: str  # int number bool string date list record set error
    element: Type | None = None  # for list and set
    fields: tuple[tuple[str, Type], ...] = ()  # for record

    def __str__(self) -> str:
        if self.kind == "list":
            if self.element is not None and self.element.kind == "record":
                return "list of records"
            return f"list of {self.element}" if self.element else "list"
        if self.kind == "set":
            return f"list of {self.element}"
        if self.kind == "record":
            return "record"
        return self.kind

    @property
    def is_numeric(self) -> bool:
        return self.kind in ("int", "number")

    @property
    def is_error(self) -> bool:
        return self.kind == "error"

    def field(self, name: str) -> Type | None:
        for field_name, field_type in self.fields:
            if field_name == name:
                return field_type
        return None


INT = Type("int")
NUMBER = Type("number")
BOOL = Type("bool")
STRING = Type("string")
DATE = Type("date")
ERROR = Type("error")  # the type of an expression that already has an error; suppresses cascades
STRING_LIST = Type("list", STRING)
EMPTY_RECORD_LIST = Type("list", Type("record"))

SCALARS = {"int": INT, "number": NUMBER, "bool": BOOL, "string": STRING, "date": DATE}


def from_ref(ref: ast.TypeRef) -> Type:
    if ref.name == "list":
        if ref.element is None:
            return EMPTY_RECORD_LIST
        return Type("list", SCALARS[ref.element])
    return SCALARS[ref.name]


def from_name(text: str) -> Type | None:
    """A type written as the language writes it (`int`, `date`, `list of string`), or None if it is not one.

    Plugin functions declare their parameters and results this way; records and bare `list` have no name.
    """
    words = text.split() if isinstance(text, str) else []
    if len(words) == 1:
        return SCALARS.get(words[0])
    if len(words) == 3 and words[:2] == ["list", "of"] and words[2] in SCALARS:
        return Type("list", SCALARS[words[2]])
    return None


def assignable(value: Type, target: Type) -> bool:
    """Can a value of type `value` be stored where `target` is expected? (int widens to number)."""
    if value.is_error or target.is_error:
        return True
    if value == target:
        return True
    if value.kind == "int" and target.kind == "number":
        return True
    if value.kind == "list" and target.kind == "list":
        if value.element is None or target.element is None:
            return True
        if target.element.kind == "record" and value.element.kind == "record":
            return True
        return assignable(value.element, target.element)
    return False


def unify(left: Type, right: Type) -> Type | None:
    """The common type of two branches (`if`, table columns, coalesce), or None."""
    if left.is_error:
        return right
    if right.is_error:
        return left
    if left == right:
        return left
    if left.is_numeric and right.is_numeric:
        return NUMBER
    if left.kind == "list" and right.kind == "list":
        if left.element is None:
            return right
        if right.element is None:
            return left
        inner = unify(left.element, right.element)
        return Type("list", inner) if inner else None
    if left.kind == "record" and right.kind == "record":
        return left if len(left.fields) >= len(right.fields) else right
    return None


def comparable(left: Type, right: Type, op: str) -> bool:
    """Spec §4: numbers and dates are ordered; strings and bools compare only with == and !=."""
    if left.is_error or right.is_error:
        return True
    if left.is_numeric and right.is_numeric:
        return True
    if left.kind == right.kind == "date":
        return True
    if left.kind == right.kind and left.kind in ("string", "bool"):
        return op in ("==", "!=")
    return False
