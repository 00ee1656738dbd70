"""Hypothesis strategies for random policies and their input records.

Input: hypothesis draws.
Output:
- `policies()`: `dsl.ast.Policy` objects shaped exactly as the parser builds
  them, so `dsl.parse(format_policy(p)) == p`; syntactically valid and
  reasonably well-typed (names are defined before use, operands have the
  types the operators want; nearly all pass the checker), small enough to
  keep property tests fast;
- `policy_texts()` / `policies_with_text()`: their canonical text;
- `input_records(policy)`: JSON-ready input records for any policy, with
  boundary values, missing optional fields and, unless `invalid=False`,
  occasionally a wrong value, a missing required field or an unknown field.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from hypothesis import assume
from hypothesis import strategies as st

from dsl import RESERVED_WORDS, ast
from dsl.format import format_policy

# Built-in function names stay free so generated calls always mean the built-in.
BUILTINS = frozenset(
    "min max abs round floor ceil clamp coalesce days_between years_between len lower upper "
    "contains starts_with top date".split()
)
# Keywords only where the grammar expects one; as names they stress the contextual lexer.
CONTEXTUAL_WORDS = (
    "title kind description owner int number bool string of optional key pii base first all "
    "unique collect sort asc desc limit".split()
)
SCALARS = ("int", "number", "bool", "string", "date")
ORDERED = ("int", "number", "date")  # types with < <= > >=
COMPARE_OPS = ("==", "!=", "<", "<=", ">", ">=")
KINDS = ("approval", "limit", "collections", "offer", "generic")

MAX_INT = 2**53  # the parser rejects larger whole numbers

_FIRST_DATE = dt.date(1900, 1, 1)
_LAST_DATE = dt.date(2100, 12, 31)

_name_bases = st.one_of(
    st.sampled_from(("income", "score", "band", "channel", "age", "dti", "offer", "apr", "segment", "flag")),
    st.sampled_from(CONTEXTUAL_WORDS),
    # Near-misses of reserved words (`notes`, `in_x`, `True`) must lex as names.
    st.sampled_from(("notes", "in_x", "is_new", "orders", "iff", "True", "Not", "tomorrow", "_x", "listing")),
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,7}", fullmatch=True),
)

# Strings exercise escapes, `#` (not a comment inside a string), table bars,
# non-ASCII and wide characters, and control characters other than \r and NUL.
_string_values = st.text(
    alphabet=st.one_of(
        st.sampled_from('abcxyz AZ09-_."\\#|:\n\t{}[]()'),
        st.sampled_from("éß中文€\u00a0\x0b\x0c\x85\u2028"),
    ),
    max_size=8,
)


# Regex strategies are costly to build, so build each once.
_WHOLE_DIGITS = st.from_regex(r"(0|[1-9][0-9]{0,5})", fullmatch=True)
_FRACTION_DIGITS = st.from_regex(r"[0-9]{1,4}", fullmatch=True)
_RULE_IDS = st.one_of(st.from_regex(r"[A-Z][0-9]{2}", fullmatch=True), _name_bases)
_REASON_CODES = st.from_regex(r"S[0-9]{2}", fullmatch=True)


@dataclass
class _Env:
    """What a statement may refer to: everything declared before it."""

    used: set[str] = field(default_factory=set)
    values: dict[str, str] = field(default_factory=dict)  # name -> int number bool string date list:T
    sets: dict[str, str] = field(default_factory=dict)  # named list -> element type
    outputs: dict[str, ast.Field] = field(default_factory=dict)
    scorecards: list[str] = field(default_factory=list)
    collects: list[str] = field(default_factory=list)

    def names_of(self, type_: str) -> list[str]:
        wanted = {"number", "int"} if type_ == "number" else {type_}  # int widens to number
        return sorted(name for name, t in self.values.items() if t in wanted)


def _fresh(draw: st.DrawFn, env: _Env, bases: st.SearchStrategy[str] = _name_bases) -> str:
    base = draw(bases)
    name, counter = base, 2
    while name in env.used or name in RESERVED_WORDS or name in BUILTINS or name == "reasons":
        name, counter = f"{base}_{counter}", counter + 1
    env.used.add(name)
    return name


# ------------------------------------------------------------------ literals


def _grouped(digits: str) -> str:
    return f"{int(digits):_}"


def _int_literal(draw: st.DrawFn, max_value: int = MAX_INT) -> ast.Number:
    value = draw(
        st.one_of(st.integers(0, 1000), st.sampled_from((0, 1, 18, 600, max_value)), st.integers(0, max_value))
    )
    style = draw(st.sampled_from(("plain", "plain", "grouped", "unwritten")))
    text = {"plain": str(value), "grouped": _grouped(str(value)), "unwritten": ""}[style]
    return ast.Number(value, text=text)


def _number_literal(draw: st.DrawFn) -> ast.Number:
    """Decimals, percentages and numbers with no recorded spelling (printed from the value)."""
    style = draw(st.sampled_from(("decimal", "percent", "percent_decimal", "unwritten", "int")))
    if style == "int":
        return _int_literal(draw)
    if style == "unwritten":
        value = draw(st.floats(min_value=0, max_value=1e22, allow_nan=False, allow_infinity=False))
        return ast.Number(value, text="")
    whole = draw(_WHOLE_DIGITS)
    if draw(st.booleans()):
        whole = _grouped(whole)
    if style == "percent":
        return ast.Number(float(Decimal(whole.replace("_", "")) / 100), text=f"{whole}%")
    fraction = draw(_FRACTION_DIGITS)
    digits = f"{whole}.{fraction}"
    exact = Decimal(digits.replace("_", ""))
    if style == "percent_decimal":
        # As the parser does: Decimal arithmetic, so 7.9% is the double nearest 0.079.
        return ast.Number(float(exact / 100), text=f"{digits}%")
    return ast.Number(float(exact), text=digits)


def _signed(number: ast.Number, negative: bool) -> ast.Expr:
    return ast.Negate(number) if negative else number


_STRING_LITERALS = st.builds(ast.String, _string_values)
_DATE_LITERALS = st.dates(_FIRST_DATE, _LAST_DATE).map(lambda d: ast.Call("date", (ast.String(d.isoformat()),)))
_DATES_OR_TODAY = st.one_of(_DATE_LITERALS, st.just(ast.Today()))


def _literal(draw: st.DrawFn, type_: str) -> ast.Expr:
    if type_ == "int":
        return _signed(_int_literal(draw, 10_000), draw(st.booleans()) and draw(st.booleans()))
    if type_ == "number":
        return _signed(_number_literal(draw), draw(st.booleans()) and draw(st.booleans()))
    if type_ == "bool":
        return ast.Bool(draw(st.booleans()))
    if type_ == "string":
        return draw(_STRING_LITERALS)
    if type_ == "date":
        return draw(_DATES_OR_TODAY)
    raise ValueError(type_)


def _constant(draw: st.DrawFn, type_: str) -> ast.Expr:
    """A literal with no `today` in it, as sets and ranges of allowed values want."""
    if type_ == "date":
        return draw(_DATE_LITERALS)
    return _literal(draw, type_)


# --------------------------------------------------------------- expressions


def _leaf(draw: st.DrawFn, env: _Env, type_: str) -> ast.Expr:
    names = env.names_of(type_)
    if names and draw(st.booleans()):
        return ast.Name(draw(st.sampled_from(names)))
    return _literal(draw, type_)


def _call(func: str, *args: ast.Expr) -> ast.Call:
    return ast.Call(func, tuple(args))


def _expr(draw: st.DrawFn, env: _Env, type_: str, depth: int = 2) -> ast.Expr:
    """An expression of `type_` over the names in `env`."""
    if depth <= 0 or draw(st.integers(0, 3)) == 0:
        return _leaf(draw, env, type_)

    def sub(t: str) -> ast.Expr:
        return _expr(draw, env, t, depth - 1)

    choice = draw(st.sampled_from(_SHAPES[type_]))
    if choice == "leaf":
        return _leaf(draw, env, type_)
    if choice == "if":
        return ast.IfElse(sub("bool"), sub(type_), sub(type_))
    if choice == "coalesce":
        return _call("coalesce", sub(type_), sub(type_))
    if choice == "arith":
        ops = "+-*/" if type_ == "number" else "+-*"  # int / int is a number
        return ast.Arith(draw(st.sampled_from(ops)), sub(type_), sub(type_))
    if choice == "negate":
        return ast.Negate(sub(type_))
    if choice in ("min", "max"):
        return _call(choice, *[sub(type_) for _ in range(draw(st.integers(2, 3)))])
    if choice == "abs":
        return _call("abs", sub(type_))
    if choice == "clamp":
        return _call("clamp", sub(type_), sub(type_), sub(type_))
    if choice == "round":
        return _call("round", sub("number"), _int_literal(draw, 4))
    if choice in ("floor", "ceil"):
        return _call(choice, sub("number"))
    if choice == "len":
        return _call("len", sub("string"))
    if choice in ("years_between", "days_between"):
        return _call(choice, sub("date"), sub("date"))
    if choice in ("lower", "upper"):
        return _call(choice, sub("string"))
    if choice in ("contains", "starts_with"):
        return _call(choice, sub("string"), draw(_STRING_LITERALS))
    if choice == "date_call":
        return draw(_DATE_LITERALS)
    if choice == "compare":
        operand = draw(st.sampled_from(("int", "number", "string", "bool", "date")))
        ops = COMPARE_OPS if operand in ORDERED else ("==", "!=")
        return ast.Compare(draw(st.sampled_from(ops)), sub(operand), sub(operand))
    if choice == "in":
        return _membership(draw, env, depth - 1)
    if choice == "is_missing":
        candidates = sorted(env.values)
        operand = ast.Name(draw(st.sampled_from(candidates))) if candidates else sub("number")
        return ast.IsMissing(operand, draw(st.booleans()))
    if choice == "and":
        return ast.And(sub("bool"), sub("bool"))
    if choice == "or":
        return ast.Or(sub("bool"), sub("bool"))
    if choice == "not":
        return ast.Not(sub("bool"))
    raise AssertionError(choice)


_SHAPES = {
    "int": [
        "leaf",
        "arith",
        "negate",
        "if",
        "min",
        "max",
        "abs",
        "clamp",
        "floor",
        "ceil",
        "len",
        "years_between",
        "days_between",
        "coalesce",
    ],
    "number": ["leaf", "arith", "negate", "if", "min", "max", "abs", "round", "clamp", "coalesce"],
    "bool": ["leaf", "compare", "in", "is_missing", "and", "or", "not", "if", "contains", "starts_with"],
    "string": ["leaf", "if", "lower", "upper", "coalesce"],
    "date": ["leaf", "if", "date_call", "coalesce"],
}


def _membership(draw: st.DrawFn, env: _Env, depth: int) -> ast.In:
    """`x in ...` / `x not in ...` on a set literal, an interval, a named list or a list value."""
    negated = draw(st.booleans())
    containers = ["set", "interval", "named_list", "list_value"]
    kind = draw(st.sampled_from(containers))
    if kind == "named_list" and env.sets:
        name = draw(st.sampled_from(sorted(env.sets)))
        item_type = env.sets[name]
        return ast.In(_expr(draw, env, item_type, depth), ast.Name(name), negated)
    lists = sorted(name for name, t in env.values.items() if t.startswith("list:"))
    if kind == "list_value" and lists:
        name = draw(st.sampled_from(lists))
        item_type = env.values[name].split(":", 1)[1]
        return ast.In(_expr(draw, env, item_type, depth), ast.Name(name), negated)
    if kind == "interval":
        item_type = draw(st.sampled_from(ORDERED))
        return ast.In(_expr(draw, env, item_type, depth), _interval(draw, item_type), negated)
    item_type = draw(st.sampled_from(("int", "number", "string")))
    return ast.In(_expr(draw, env, item_type, depth), _set_literal(draw, item_type), negated)


def _set_literal(draw: st.DrawFn, type_: str, min_size: int = 1) -> ast.SetLiteral:
    return ast.SetLiteral(tuple(_literal(draw, type_) for _ in range(draw(st.integers(min_size, 4)))))


def _interval(draw: st.DrawFn, type_: str) -> ast.Interval:
    low, high = sorted((draw(_constant_value(type_)), draw(_constant_value(type_))))
    # Leave a value of the type strictly inside, so that an `in` range on an
    # input never rules out every record.
    gap = {"int": 2, "number": Decimal("0.02"), "date": dt.timedelta(days=2)}[type_]
    high = max(high, low + gap)
    return ast.Interval(_literal_for(low, type_), _literal_for(high, type_), draw(st.booleans()), draw(st.booleans()))


def _constant_value(type_: str) -> st.SearchStrategy[Any]:
    if type_ == "int":
        return st.integers(-1000, 100_000)
    if type_ == "number":
        return st.integers(-1000, 100_000).map(lambda n: Decimal(n) / 100)
    return st.dates(_FIRST_DATE, _LAST_DATE)


def _literal_for(value: Any, type_: str) -> ast.Expr:
    """The literal the parser builds for a constant value (negatives via unary minus)."""
    if type_ == "date":
        return ast.Call("date", (ast.String(value.isoformat()),))
    if type_ == "int":
        return _signed(ast.Number(abs(value), text=str(abs(value))), value < 0)
    text = format(abs(value), "f")
    if "." not in text:
        text += ".0"
    return _signed(ast.Number(float(Decimal(text)), text=text), value < 0)


# ---------------------------------------------------------------- unary tests


def _unary_test(draw: st.DrawFn, type_: str, otherwise: bool = False) -> ast.UnaryTest:
    """A table cell or scorecard bin test suited to a column of `type_`."""
    kinds = ["any", "missing", "not_missing", "equal"]
    if type_ in ORDERED:
        kinds += ["compare", "compare", "interval"]
    else:
        kinds += ["not_equal"]
    if type_ in ("int", "number", "string"):
        kinds += ["set", "not_set"]
    if otherwise:
        kinds.append("otherwise")
    kind = draw(st.sampled_from(kinds))
    if kind == "any":
        return ast.TestAny()
    if kind == "otherwise":
        return ast.TestOtherwise()
    if kind in ("missing", "not_missing"):
        return ast.TestMissing(kind == "not_missing")
    if kind == "equal":
        return ast.TestCompare("==", _literal(draw, type_))
    if kind == "not_equal":
        return ast.TestCompare("!=", _literal(draw, type_))
    if kind == "compare":
        return ast.TestCompare(draw(st.sampled_from(COMPARE_OPS[1:])), _literal(draw, type_))
    if kind == "interval":
        return ast.TestInterval(_interval(draw, type_))
    return ast.TestSet(_set_literal(draw, type_), kind == "not_set")


# ------------------------------------------------------------- declarations


def _input_field(draw: st.DrawFn, env: _Env, allow_key: bool) -> ast.Field:
    name = _fresh(draw, env)
    kind = draw(st.sampled_from((*SCALARS, "list:string", "list:int", "list:number")))
    type_ref = ast.TypeRef("list", kind.split(":")[1]) if kind.startswith("list:") else ast.TypeRef(kind)
    modifiers: list[str] = []
    allowed: ast.SetLiteral | ast.Interval | None = None
    if draw(st.booleans()):
        modifiers.append("optional")
    if kind == "string" and allow_key and draw(st.booleans()):
        modifiers.append("key")
    if kind == "string" and draw(st.integers(0, 3)) == 0:
        modifiers.append("pii")
    if kind in ("int", "number", "string", "date") and draw(st.booleans()):
        if kind == "string" or (kind != "date" and draw(st.booleans())):
            allowed = ast.SetLiteral(tuple(_constant(draw, kind) for _ in range(draw(st.integers(1, 4)))))
        else:
            allowed = _interval(draw, kind)
        modifiers.append("in")
    order = draw(st.permutations(modifiers))
    if allowed is None:
        # Random literals compared with a constrained input usually fall outside
        # its constraint, which the checker rightly rejects; such inputs stay
        # declared (records exercise them) but expressions leave them alone.
        env.values[name] = kind
    return ast.Field(
        name,
        type_ref,
        optional="optional" in modifiers,
        key="key" in modifiers,
        pii="pii" in modifiers,
        allowed=allowed,
        modifiers=tuple(order),
    )


def _output_field(draw: st.DrawFn, env: _Env) -> ast.Field:
    name = _fresh(draw, env)
    kind = draw(st.sampled_from((*SCALARS, "list")))
    if kind == "list":
        field_ = ast.Field(name, ast.TypeRef("list"))
    else:
        allowed: ast.SetLiteral | ast.Interval | None = None
        modifiers = []
        if kind in ("string", "int") and draw(st.booleans()):
            allowed = ast.SetLiteral(tuple(_unique_constants(draw, kind)))
            modifiers.append("in")
        elif kind == "number" and draw(st.integers(0, 3)) == 0:
            allowed = _interval(draw, "number")
            allowed = ast.Interval(allowed.low, allowed.high, True, allowed.high_closed)
            modifiers.append("in")
        optional = kind == "date" or draw(st.integers(0, 2)) == 0
        if optional:
            modifiers.append("optional")
        default = None
        if not optional or draw(st.booleans()):
            if isinstance(allowed, ast.SetLiteral):
                default = draw(st.sampled_from(allowed.items))
            elif isinstance(allowed, ast.Interval):
                default = allowed.low  # closed, so allowed
            else:
                default = _constant(draw, kind)
        field_ = ast.Field(
            name,
            ast.TypeRef(kind),
            optional=optional,
            allowed=allowed,
            default=default,
            modifiers=tuple(draw(st.permutations(modifiers))),
        )
    env.outputs[name] = field_
    return field_


def _unique_constants(draw: st.DrawFn, kind: str) -> list[ast.Expr]:
    items: list[ast.Expr] = []
    for _ in range(draw(st.integers(1, 4))):
        item = _constant(draw, kind)
        if item not in items:
            items.append(item)
    return items


def _header(draw: st.DrawFn, env: _Env) -> ast.Header:
    name = _fresh(draw, env)
    title = draw(_string_values)
    kind = draw(st.one_of(st.none(), st.sampled_from(KINDS)))
    description = draw(st.one_of(st.none(), _string_values))
    owner = draw(st.one_of(st.none(), _string_values))
    return ast.Header(name, title=title, kind=kind, description=description, owner=owner)


# ---------------------------------------------------------------- statements


def _action(draw: st.DrawFn, env: _Env) -> ast.Action:
    kind = draw(st.sampled_from(("assign", "assign", "reason", "stop")))
    assignable = [name for name, f in env.outputs.items() if f.type.name != "list" or env.collects]
    if kind == "assign" and assignable:
        target = draw(st.sampled_from(assignable))
        output = env.outputs[target]
        if output.type.name == "list":
            value: ast.Expr = ast.Name(draw(st.sampled_from(env.collects)))
        elif isinstance(output.allowed, ast.SetLiteral):
            value = draw(st.sampled_from(output.allowed.items))
        elif isinstance(output.allowed, ast.Interval):
            # Output ranges are closed below: the low bound is always allowed.
            low = output.allowed.low
            computed = _expr(draw, env, output.type.name)
            value = low if draw(st.booleans()) else _call("clamp", computed, low, low)
        else:
            value = _expr(draw, env, output.type.name)
        return ast.Assign(target, value)
    if kind == "stop":
        return ast.Stop()
    if env.scorecards and draw(st.booleans()):
        reasons = ast.Attribute(ast.Name(draw(st.sampled_from(env.scorecards))), "reasons")
        if draw(st.booleans()):
            return ast.AddReason(_call("top", reasons, _int_literal(draw, 5)))
        return ast.AddReason(reasons)
    return ast.AddReason(draw(_STRING_LITERALS))


def _list_decl(draw: st.DrawFn, env: _Env) -> ast.ListDecl:
    name = _fresh(draw, env)
    element = draw(st.sampled_from(("string", "int", "number")))
    members = _set_literal(draw, element, min_size=0) if draw(st.booleans()) else None
    env.sets[name] = element
    return ast.ListDecl(name, element, members)


def _let(draw: st.DrawFn, env: _Env) -> ast.Let:
    type_ = draw(st.sampled_from(SCALARS))
    value = _expr(draw, env, type_)  # drawn before the name exists: no self-reference
    name = _fresh(draw, env)
    env.values[name] = type_
    return ast.Let(name, value)


def _rules_block(draw: st.DrawFn, env: _Env) -> ast.Rules:
    name = _fresh(draw, env)
    rules = []
    for _ in range(draw(st.integers(1, 3))):
        rule_id = _fresh(draw, env, _RULE_IDS)
        label = draw(st.one_of(st.none(), _string_values))
        condition = _expr(draw, env, "bool")
        body = [_action(draw, env) for _ in range(draw(st.integers(1, 3)))]
        rules.append(ast.Rule(rule_id, label, condition, tuple(body), then_block=draw(st.booleans())))
    return ast.Rules(name, draw(st.sampled_from(("first", "all"))), tuple(rules))


_TESTABLE = ("int", "number", "bool", "string", "date")


def _table(draw: st.DrawFn, env: _Env) -> ast.Table:
    name = _fresh(draw, env)
    hit = draw(st.sampled_from(("first", "unique", "collect")))
    # A table with no input columns is legal (`|| x |`); keep it rare.
    input_count = draw(st.sampled_from((0, 1, 1, 2, 2, 3)))
    input_types = [draw(st.sampled_from(_TESTABLE)) for _ in range(input_count)]
    keys: list[ast.Expr] = []
    if hit == "unique" and input_types:
        # Rows keyed by distinct values in the first column cannot overlap,
        # so the checker does not reject the table.
        input_types[0] = draw(st.sampled_from(("int", "string")))
        for _ in range(draw(st.integers(1, 4))):
            key = _constant(draw, input_types[0])
            # By value: `0` and `-0` are different trees but the same key.
            if _constant_of(key) not in [_constant_of(k) for k in keys]:
                keys.append(key)
    inputs = tuple(_expr(draw, env, t, depth=1) for t in input_types)
    output_types = [draw(st.sampled_from(("int", "number", "string", "bool"))) for _ in range(draw(st.integers(1, 2)))]
    outputs = tuple(ast.OutputColumn(_fresh(draw, env)) for _ in output_types)
    row_count = len(keys) if keys else 1 if hit == "unique" else draw(st.integers(1, 4))
    rows = []
    for index in range(row_count):
        tests = [_unary_test(draw, t) for t in input_types]
        if keys:
            tests[0] = ast.TestCompare("==", keys[index])
        rows.append(ast.TableRow(tuple(tests), tuple(_expr(draw, env, t, depth=1) for t in output_types)))
    sort_column, descending, limit = None, False, None
    if hit == "collect":
        sortable = [c.name for c, t in zip(outputs, output_types) if t != "bool"]
        if sortable and draw(st.booleans()):
            sort_column = draw(st.sampled_from(sortable))
            descending = draw(st.booleans())
        if draw(st.booleans()):
            limit = draw(st.integers(1, 5))
        env.collects.append(name)
    else:
        for column, type_ in zip(outputs, output_types):
            env.values[column.name] = type_
    return ast.Table(name, hit, inputs, outputs, tuple(rows), sort_column, descending, limit)


def _points(draw: st.DrawFn) -> tuple[int | float, str]:
    """A signed bin or base number and its spelling ("" when unwritten)."""
    number = _int_literal(draw, 1000) if draw(st.booleans()) else _number_literal(draw)
    if number.value >= 1e6:
        number = ast.Number(number.value % 1000, text="")  # points stay within a double's exact range
    negative = draw(st.booleans())
    value = -number.value if negative else number.value
    if not number.text:
        return value, ""
    return value, ("-" if negative else "") + number.text


def _scorecard(draw: st.DrawFn, env: _Env) -> ast.Scorecard:
    name = _fresh(draw, env)
    characteristics = []
    for _ in range(draw(st.integers(1, 3))):
        type_ = draw(st.sampled_from(("int", "number", "number", "string", "date")))
        characteristic = _expr(draw, env, type_, depth=1)
        label = draw(st.one_of(st.none(), _string_values))
        bins = []
        count = draw(st.integers(1, 4))
        for index in range(count):
            test = _unary_test(draw, type_, otherwise=index == count - 1)
            points, text = _points(draw)
            reason = draw(st.one_of(st.none(), _REASON_CODES))
            bins.append(ast.Bin(test, points, reason, points_text=text))
        characteristics.append(ast.Characteristic(characteristic, label, tuple(bins)))
    if draw(st.booleans()):
        base, base_text = _points(draw)
        base_text_or_none: str | None = base_text
    else:
        base, base_text_or_none = 0, None
    env.values[name] = "number"
    env.scorecards.append(name)
    return ast.Scorecard(name, base, tuple(characteristics), base_text=base_text_or_none)


def _tree_level(draw: st.DrawFn, env: _Env, depth: int) -> tuple[ast.Branch, ...]:
    branches = []
    conditions = draw(st.integers(1, 3))
    with_otherwise = draw(st.booleans())
    for index in range(conditions + with_otherwise):
        condition = None if index == conditions else _expr(draw, env, "bool", depth=1)
        if depth > 0 and draw(st.integers(0, 2)) == 0:
            body: tuple[Any, ...] = _tree_level(draw, env, depth - 1)
        else:
            body = tuple(_action(draw, env) for _ in range(draw(st.integers(1, 2))))
        branches.append(ast.Branch(condition, body))
    return tuple(branches)


def _tree(draw: st.DrawFn, env: _Env) -> ast.Tree:
    name = _fresh(draw, env)
    return ast.Tree(name, _tree_level(draw, env, 2))


_STATEMENTS = {
    "list": _list_decl,
    "let": _let,
    "rules": _rules_block,
    "table": _table,
    "scorecard": _scorecard,
    "tree": _tree,
}


@st.composite
def policies(draw: st.DrawFn, max_statements: int = 5) -> ast.Policy:
    """A small random policy, as `dsl.parse` would build it from `format_policy`'s text."""
    env = _Env()
    header = _header(draw, env)
    inputs: list[ast.Field] = []
    for _ in range(draw(st.integers(1, 5))):
        inputs.append(_input_field(draw, env, allow_key=not any(f.key for f in inputs)))
    outputs = [_output_field(draw, env) for _ in range(draw(st.integers(1, 4)))]
    kinds = draw(st.lists(st.sampled_from(sorted(_STATEMENTS)), max_size=max_statements))
    statements = [_STATEMENTS[kind](draw, env) for kind in kinds]
    return ast.Policy(header, tuple(inputs), tuple(outputs), tuple(statements))


def policy_texts(max_statements: int = 5) -> st.SearchStrategy[str]:
    return policies(max_statements).map(format_policy)


def policies_with_text(max_statements: int = 5) -> st.SearchStrategy[tuple[ast.Policy, str]]:
    return policies(max_statements).map(lambda p: (p, format_policy(p)))


# ------------------------------------------------------------- input records


def _constant_of(node: ast.Expr | None) -> Any:
    """The value of a literal bound or set member, or None when it is not a plain constant."""
    if isinstance(node, ast.Number):
        return node.value
    if isinstance(node, ast.Negate):
        inner = _constant_of(node.operand)
        return -inner if isinstance(inner, (int, float)) else None
    if isinstance(node, ast.String):
        return node.value
    if isinstance(node, ast.Call) and node.func == "date" and len(node.args) == 1:
        arg = node.args[0]
        if isinstance(arg, ast.String):
            try:
                return dt.date.fromisoformat(arg.value)
            except ValueError:
                return None
    return None


def _json_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date) else value


_INT_EDGES = [0, 1, -1, 2**31 - 1, -(2**31), MAX_INT, -MAX_INT]
_NUMBER_EDGES = [0, 0.0, -0.0, 1e-9, 0.1, 0.5, 1e15, -1.5, 2**53]
_DATE_EDGES = [dt.date(2024, 2, 29), dt.date(1900, 1, 1), dt.date(2099, 12, 31), dt.date(2000, 1, 1)]


def _scalar_values(type_: str) -> st.SearchStrategy[Any]:
    if type_ == "int":
        return st.one_of(st.sampled_from(_INT_EDGES), st.integers(-(10**6), 10**6))
    if type_ == "number":
        return st.one_of(
            st.sampled_from(_NUMBER_EDGES),
            st.integers(-(10**6), 10**6),
            st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False),
        )
    if type_ == "bool":
        return st.booleans()
    if type_ == "string":
        return st.one_of(st.just(""), st.text(max_size=12))
    if type_ == "date":
        return st.one_of(st.sampled_from(_DATE_EDGES), st.dates(_FIRST_DATE, _LAST_DATE)).map(_json_value)
    raise ValueError(type_)


def _interval_values(interval: ast.Interval, type_: str) -> list[Any]:
    """Both bounds and their neighbours, kept only where the interval admits them."""
    low, high = _constant_of(interval.low), _constant_of(interval.high)
    if low is None or high is None:
        return []
    if type_ == "date":
        step: Any = dt.timedelta(days=1)
    elif type_ == "int":
        step = 1
    else:
        step = 1e-6
    candidates = [low, high, low + step, high - step]
    if type_ != "date":
        candidates.append((low + high) / 2 if type_ == "number" else (low + high) // 2)

    def inside(value: Any) -> bool:
        above = value >= low if interval.low_closed else value > low
        below = value <= high if interval.high_closed else value < high
        return above and below

    return [_json_value(v) for v in candidates if inside(v)]


def _interval_outside(interval: ast.Interval, type_: str) -> list[Any]:
    low, high = _constant_of(interval.low), _constant_of(interval.high)
    if low is None or high is None:
        return []
    step: Any = dt.timedelta(days=1) if type_ == "date" else 1
    values = [low - step, high + step]
    if not interval.low_closed:
        values.append(low)
    if not interval.high_closed:
        values.append(high)
    return [_json_value(v) for v in values]


@st.composite
def _valid_value(draw: st.DrawFn, input_field: ast.Field) -> Any:
    type_ref = input_field.type
    if type_ref.name == "list":
        element = type_ref.element or "string"
        return draw(st.lists(_scalar_values(element), max_size=4))
    allowed = input_field.allowed
    if isinstance(allowed, ast.SetLiteral):
        members = [_constant_of(item) for item in allowed.items]
        members = [m for m in members if m is not None and _usable(m)]
        if members:
            return _json_value(draw(st.sampled_from(members)))
        assume(not allowed.items)  # every allowed number is beyond ±2**53: no input can have it
    if isinstance(allowed, ast.Interval):
        inside = [value for value in _interval_values(allowed, type_ref.name) if _usable(value)]
        if inside:
            return draw(st.sampled_from(inside))
    return draw(_scalar_values(type_ref.name))


def _usable(value: Any) -> bool:
    """Whether a number is one an input may hold (at most ±2**53; docs/language.md)."""
    return not isinstance(value, (int, float)) or isinstance(value, bool) or abs(value) <= MAX_INT


_WRONG_TYPE = {
    "int": [1.5, "1", True, None, [1]],
    "number": ["1.0", True, None, {"x": 1}],
    "bool": [1, 0, "true", None],
    "string": [1, False, None, ["a"]],
    "date": ["2024-13-01", "2024-02-30", "31/01/2024", 20240131, "", None],
    "list": ["a", 1, {"a": 1}, None],
}


@st.composite
def _wrong_value(draw: st.DrawFn, input_field: ast.Field) -> Any:
    candidates = list(_WRONG_TYPE[input_field.type.name])
    if input_field.type.name == "list":
        wrong_element = {"string": 1, "int": "1", "number": "x"}[input_field.type.element or "string"]
        candidates.append([wrong_element])
    allowed = input_field.allowed
    if isinstance(allowed, ast.SetLiteral):
        candidates.append(
            {"string": "not-a-member-\u2028", "int": -987_654, "number": -987_654.5}.get(input_field.type.name, "x")
        )
    elif isinstance(allowed, ast.Interval):
        candidates.extend(_interval_outside(allowed, input_field.type.name))
    if input_field.optional:
        candidates = [c for c in candidates if c is not None]  # null is fine for an optional field
    return draw(st.sampled_from(candidates))


# The last choice is the least favoured by hypothesis, which leans towards the first.
_ONE_IN_FIVE = st.sampled_from((False, False, False, False, True))


@st.composite
def input_records(draw: st.DrawFn, policy: ast.Policy, invalid: bool = True) -> dict[str, Any]:
    """A JSON-ready input record for `policy`.

    Values have the declared types and respect `in` constraints, favouring
    boundary values; optional fields are sometimes absent or null. With
    `invalid`, an occasional record (under one in five) also has a
    wrong-typed or out-of-range value, a required field left out, or an
    unknown field.
    """
    record: dict[str, Any] = {}
    for input_field in policy.inputs:
        if input_field.optional:
            presence = draw(st.sampled_from(("value", "value", "absent", "null")))
            if presence == "absent":
                continue
            if presence == "null":
                record[input_field.name] = None
                continue
        record[input_field.name] = draw(_valid_value(input_field))
    if invalid and policy.inputs and draw(_ONE_IN_FIVE):
        victim = draw(st.sampled_from(policy.inputs))
        mistake = draw(st.sampled_from(("wrong_value", "drop", "unknown_field")))
        if mistake == "wrong_value":
            record[victim.name] = draw(_wrong_value(victim))
        elif mistake == "drop" and not victim.optional:
            record.pop(victim.name, None)
        else:
            declared = {f.name for f in policy.inputs}
            extra = next(n for n in ("extra", "extra_field", "unknown_1", "zz_unknown") if n not in declared)
            record[extra] = draw(st.one_of(st.none(), st.integers(), st.text(max_size=3)))
    return record


def valid_input_records(policy: ast.Policy) -> st.SearchStrategy[dict[str, Any]]:
    """Input records that satisfy every declaration of `policy`'s `input:` section."""
    return input_records(policy, invalid=False)


def compiled_or_discard(text: str):
    """The generated policy text compiled, or the example discarded (`assume(False)`): the generator can write a
    text the checker refuses, which is no test of the engine."""
    from compiler import PolicyError, compile_source

    try:
        return compile_source(text, "generated.policy")
    except PolicyError:
        assume(False)
