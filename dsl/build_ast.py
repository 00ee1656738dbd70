"""Lark parse tree -> immutable AST (`dsl.ast`).

Input: the tree produced by `dsl/grammar.lark` (with `propagate_positions`).
Output: `ast.Policy`. Literal-level mistakes the grammar cannot express
(a malformed number, an unknown string escape) raise `PolicySyntaxError`.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from lark import Token, Tree

from dsl import ast
from dsl.comments import comment_start
from dsl.diagnostics import ERROR, NO_SPAN, Diagnostic, Span
from dsl.errors import PolicySyntaxError

# Integers beyond 2**53 cannot round-trip through JSON or a double exactly.
MAX_EXACT_INT = 2**53
# Every later stage walks the AST recursively; capping the nesting here keeps them all far from
# Python's recursion limit (an analyst never needs more; a long sum can be split with `let`).
MAX_NESTING = 100
# The longest chain of one operator (`a and b and ...`): real knockout rules run to dozens of clauses. The
# checker and evaluators walk expressions recursively; this keeps them well inside Python's recursion limit.
MAX_CHAIN = 300
# Left-associative operators whose chains are one level of nesting, however long.
_CHAINS = {"arith", "and_op", "or_op"}


def _data(node) -> str | None:
    return node.data if isinstance(node, Tree) else None


_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t"}


def _code_length(line: str) -> int:
    """Length of a line without its trailing comment and white space."""
    start = comment_start(line)
    return len((line if start < 0 else line[:start]).rstrip())


class SourceLines:
    """Trims node ends that Lark places after a block's trailing newline back onto the code."""

    def __init__(self, source: str) -> None:
        self.lines = source.split("\n")

    def trimmed_end(self, start_line: int, end_line: int, end_column: int) -> tuple[int, int]:
        line, column = end_line, end_column
        while line > start_line:
            text = self.lines[line - 1][: column - 1] if line - 1 < len(self.lines) else ""
            length = _code_length(text)
            if length:
                return line, length + 1
            line -= 1
            column = len(self.lines[line - 1]) + 1
        text = self.lines[line - 1][: column - 1] if 0 < line <= len(self.lines) else ""
        return line, max(_code_length(text) + 1, 1)


def _token_span(filename: str, token: Token) -> Span:
    return Span(filename, token.line, token.column, token.end_line, token.end_column)


def parse_number(text: str, span: Span) -> int | float:
    """A NUMBER token's value: int unless it has a decimal point or a percent sign."""
    digits = text[:-1] if text.endswith("%") else text
    if "__" in digits or digits.endswith("_") or "_." in digits or "._" in digits:
        raise PolicySyntaxError(Diagnostic(ERROR, "bad_number", f'malformed number "{text}"', span))
    try:
        exact = Decimal(digits.replace("_", ""))
    except InvalidOperation:  # pragma: no cover - the token regex admits only digits
        raise PolicySyntaxError(Diagnostic(ERROR, "bad_number", f'malformed number "{text}"', span)) from None
    if text.endswith("%"):
        # Decimal arithmetic so that 7.9% is the double nearest 0.079, not 7.9 / 100.
        return float(exact / 100)
    if "." in digits:
        value = float(exact)
        if value == float("inf"):
            raise PolicySyntaxError(
                Diagnostic(ERROR, "number_too_large", f"the number {text} is too large to represent", span)
            )
        return value
    value = int(exact)
    if value > MAX_EXACT_INT:
        raise PolicySyntaxError(
            Diagnostic(
                ERROR,
                "number_too_large",
                f"the number {text} is too large; whole numbers must be at most {MAX_EXACT_INT:_}",
                span,
            )
        )
    return value


def parse_string(token: Token, span: Span) -> str:
    raw = str(token)[1:-1]
    out: list[str] = []
    index = 0
    while index < len(raw):
        char = raw[index]
        if char == "\\":
            escaped = raw[index + 1]
            if escaped not in _ESCAPES:
                column = span.column + 1 + index
                raise PolicySyntaxError(
                    Diagnostic(
                        ERROR,
                        "bad_escape",
                        f'unknown escape "\\{escaped}" in a string; the escapes are \\", \\\\, \\n and \\t',
                        Span(span.file, span.line, column, span.line, column + 2),
                    )
                )
            out.append(_ESCAPES[escaped])
            index += 2
        else:
            out.append(char)
            index += 1
    return "".join(out)


class BuildAst:
    """Builds the AST of one parse tree; create one per parse (it holds the file name).

    Each grammar rule (or alias) `r` is handled by the method `r(meta, *children)`.
    A direct recursive walk is used instead of `lark.Transformer` because the
    latter re-wraps the handler on every node, which doubled the time to
    build the AST of a large policy.
    """

    def __init__(self, filename: str, source: str) -> None:
        self.filename = filename
        self.source_lines = SourceLines(source)
        self._handlers: dict[str, object] = {}

    def transform(self, tree: Tree):
        return self._build(tree, 0, 0)

    def _build(self, node, depth: int, length: int):
        """`depth` counts nesting; `length` the tree's real depth, where a chain `a + b + c` or `a and b and c`
        (each operator the left operand of the next) is one level of nesting but as long as its terms."""
        if not isinstance(node, Tree):
            return node  # a Token, or None for an absent optional part
        if depth > MAX_NESTING:
            self._too_deep(
                node, f"this is nested more than {MAX_NESTING} levels deep; split it up (an expression, with let)"
            )
        if length > MAX_CHAIN:
            self._too_deep(node, f"this expression is longer than {MAX_CHAIN} terms; split it up with let")
        handler = self._handlers.get(node.data)
        if handler is None:
            handler = self._handlers[node.data] = getattr(self, str(node.data))
        chain = node.data in _CHAINS
        children = [
            self._build(child, depth + (0 if chain and index == 0 and _data(child) == node.data else 1), length + 1)
            for index, child in enumerate(node.children)
        ]
        return handler(node.meta, *children)

    def _too_deep(self, node, message: str) -> None:
        span = self._span(node.meta)
        raise PolicySyntaxError(
            Diagnostic(ERROR, "too_deep", message, Span(span.file, span.line, span.column, span.line, span.column + 1))
        )

    def _span(self, meta) -> Span:
        if getattr(meta, "empty", True):
            return Span(self.filename, 0, 0, 0, 0)
        if meta.end_line > meta.line or meta.end_column <= meta.column:
            end_line, end_column = self.source_lines.trimmed_end(meta.line, meta.end_line, meta.end_column)
            if (end_line, end_column) > (meta.line, meta.column):
                return Span(self.filename, meta.line, meta.column, end_line, end_column)
        return Span(self.filename, meta.line, meta.column, meta.end_line, meta.end_column)

    def _tok(self, token: Token) -> Span:
        return _token_span(self.filename, token)

    # ---------------------------------------------------------------- structure

    def start(self, meta, *children):
        header, inputs, outputs, *statements = [c for c in children if c is not None]
        return ast.Policy(header, tuple(inputs), tuple(outputs), tuple(statements), span=self._span(meta))

    def policy_header(self, meta, name: Token, *items):
        values: dict[str, str] = {}
        spans: dict[str, Span] = {}
        for key, value, span in items:
            values.setdefault(key, value)
            spans.setdefault(key, span)
        return ast.Header(
            name=str(name),
            title=values.get("title"),
            kind=values.get("kind"),
            description=values.get("description"),
            owner=values.get("owner"),
            items=tuple((key, span) for key, _, span in items),
            kind_span=spans.get("kind", self._tok(name)),
            name_span=self._tok(name),
            span=self._span(meta),
        )

    def header_title(self, meta, value: Token):
        return ("title", parse_string(value, self._tok(value)), self._span(meta))

    def header_description(self, meta, value: Token):
        return ("description", parse_string(value, self._tok(value)), self._span(meta))

    def header_owner(self, meta, value: Token):
        return ("owner", parse_string(value, self._tok(value)), self._span(meta))

    def header_kind(self, meta, value: Token):
        return ("kind", str(value), self._tok(value))

    def input_section(self, meta, *fields):
        return list(fields)

    output_section = input_section

    def _field(self, meta, name: Token, type_ref: ast.TypeRef, rest) -> ast.Field:
        modifiers = [m for m in rest if isinstance(m, tuple)]
        defaults = [d for d in rest if not isinstance(d, tuple)]
        allowed = next((value for kind, value in modifiers if kind == "in"), None)
        return ast.Field(
            name=str(name),
            type=type_ref,
            optional=any(kind == "optional" for kind, _ in modifiers),
            key=any(kind == "key" for kind, _ in modifiers),
            pii=any(kind == "pii" for kind, _ in modifiers),
            allowed=allowed,
            default=defaults[0] if defaults else None,
            modifiers=tuple(kind for kind, _ in modifiers),
            name_span=self._tok(name),
            span=self._span(meta),
        )

    def input_field(self, meta, name, type_ref, *rest):
        return self._field(meta, name, type_ref, rest)

    output_field = input_field

    def default(self, meta, expr):
        return expr

    def scalar_type(self, meta, token: Token):
        return ast.TypeRef(str(token), span=self._span(meta))

    def list_type(self, meta, token: Token):
        return ast.TypeRef("list", str(token), span=self._span(meta))

    def record_list_type(self, meta):
        return ast.TypeRef("list", None, span=self._span(meta))

    def mod_optional(self, meta):
        return ("optional", None)

    def mod_key(self, meta):
        return ("key", None)

    def mod_pii(self, meta):
        return ("pii", None)

    def mod_in(self, meta, allowed):
        return ("in", allowed)

    # ---------------------------------------------------------------- statements

    def list_decl(self, meta, name: Token, element: Token, members=None):
        return ast.ListDecl(str(name), str(element), members, name_span=self._tok(name), span=self._span(meta))

    def let_decl(self, meta, name: Token, expr):
        return ast.Let(str(name), expr, name_span=self._tok(name), span=self._span(meta))

    def rules_block(self, meta, name: Token, hit: Token, *rules):
        return ast.Rules(str(name), str(hit), tuple(rules), name_span=self._tok(name), span=self._span(meta))

    def rule(self, meta, rule_id: Token, *rest):
        label = None
        if isinstance(rest[0], Token) and rest[0].type == "STRING":
            label = parse_string(rest[0], self._tok(rest[0]))
            rest = rest[1:]
        condition, (then_block, actions) = rest
        return ast.Rule(
            str(rule_id),
            label,
            condition,
            tuple(actions),
            then_block=then_block,
            id_span=self._tok(rule_id),
            span=self._span(meta),
        )

    def then_inline(self, meta, *actions):
        return (False, actions)

    def then_block(self, meta, *actions):
        return (True, actions)

    def assign(self, meta, target: Token, expr):
        return ast.Assign(str(target), expr, target_span=self._tok(target), span=self._span(meta))

    def reason(self, meta, expr):
        return ast.AddReason(expr, span=self._span(meta))

    def stop(self, meta):
        return ast.Stop(span=self._span(meta))

    def table_block(self, meta, name: Token, hit, header, *rows):
        hit_name, sort_column, sort_descending, limit, sort_span, limit_span = hit
        inputs, outputs = header
        return ast.Table(
            name=str(name),
            hit=hit_name,
            inputs=tuple(inputs),
            outputs=tuple(outputs),
            rows=tuple(rows),
            sort_column=sort_column,
            sort_descending=sort_descending,
            limit=limit,
            sort_span=sort_span,
            limit_span=limit_span,
            name_span=self._tok(name),
            span=self._span(meta),
        )

    def hit_first(self, meta):
        return ("first", None, False, None, NO_SPAN, NO_SPAN)

    def hit_unique(self, meta):
        return ("unique", None, False, None, NO_SPAN, NO_SPAN)

    def hit_collect(self, meta, *parts):
        sort_column, descending, limit, sort_span, limit_span = None, False, None, NO_SPAN, NO_SPAN
        for part in parts:
            if part is None:
                continue
            if part[0] == "sort":
                _, sort_column, descending, sort_span = part
            else:
                _, limit, limit_span = part
        return ("collect", sort_column, descending, limit, sort_span, limit_span)

    def collect_sort(self, meta, column: Token, order: Token):
        return ("sort", str(column), str(order) == "desc", self._tok(column))

    def collect_limit(self, meta, count: Token):
        return ("limit", parse_number(str(count), self._tok(count)), self._tok(count))

    def table_header(self, meta, inputs, outputs):
        return (inputs, outputs)

    def header_inputs(self, meta, *exprs):
        return list(exprs)

    def header_outputs(self, meta, *names: Token):
        return [ast.OutputColumn(str(n), span=self._tok(n)) for n in names]

    def table_row(self, meta, tests, results):
        return ast.TableRow(tuple(tests), tuple(results), span=self._span(meta))

    def row_tests(self, meta, *tests):
        return list(tests)

    def row_results(self, meta, *exprs):
        return list(exprs)

    def scorecard_block(self, meta, name: Token, *rest):
        base: int | float = 0
        base_text = None
        if rest and isinstance(rest[0], tuple):
            base, base_text = rest[0]
            rest = rest[1:]
        return ast.Scorecard(
            str(name), base, tuple(rest), base_text=base_text, name_span=self._tok(name), span=self._span(meta)
        )

    def signed_number(self, meta, *tokens: Token):
        text = "".join(str(t) for t in tokens)
        number = parse_number(str(tokens[-1]), self._tok(tokens[-1]))
        return (-number if len(tokens) == 2 else number, text)

    def characteristic(self, meta, expr, *rest):
        label = None
        if rest and isinstance(rest[0], Token):
            label = parse_string(rest[0], self._tok(rest[0]))
            rest = rest[1:]
        return ast.Characteristic(expr, label, tuple(rest), span=self._span(meta))

    def bin(self, meta, test, points, reason: Token | None = None):
        value, text = points
        reason_code = parse_string(reason, self._tok(reason)) if reason is not None else None
        return ast.Bin(test, value, reason_code, points_text=text, span=self._span(meta))

    def tree_block(self, meta, name: Token, *branches):
        return ast.Tree(str(name), tuple(branches), name_span=self._tok(name), span=self._span(meta))

    def branch(self, meta, condition, *body):
        return ast.Branch(condition, tuple(body), span=self._span(meta))

    def otherwise_branch(self, meta, *body):
        return ast.Branch(None, tuple(body), span=self._span(meta))

    # ---------------------------------------------------------------- unary tests

    def test_any(self, meta):
        return ast.TestAny(span=self._span(meta))

    def test_missing(self, meta):
        return ast.TestMissing(False, span=self._span(meta))

    def test_not_missing(self, meta):
        return ast.TestMissing(True, span=self._span(meta))

    def test_compare(self, meta, op: Token, operand):
        return ast.TestCompare(str(op), operand, span=self._span(meta))

    def test_equal(self, meta, operand):
        return ast.TestCompare("==", operand, span=self._span(meta))

    def test_interval(self, meta, interval):
        return ast.TestInterval(interval, span=self._span(meta))

    def test_set(self, meta, items):
        return ast.TestSet(items, False, span=self._span(meta))

    def test_not_set(self, meta, items):
        return ast.TestSet(items, True, span=self._span(meta))

    def test_otherwise(self, meta):
        return ast.TestOtherwise(span=self._span(meta))

    # ---------------------------------------------------------------- expressions

    def if_expr(self, meta, condition, then, otherwise):
        return ast.IfElse(condition, then, otherwise, span=self._span(meta))

    def or_op(self, meta, left, right):
        return ast.Or(left, right, span=self._span(meta))

    def and_op(self, meta, left, right):
        return ast.And(left, right, span=self._span(meta))

    def not_op(self, meta, operand):
        return ast.Not(operand, span=self._span(meta))

    def compare(self, meta, left, op: Token, right):
        return ast.Compare(str(op), left, right, span=self._span(meta))

    def in_expr(self, meta, item, container):
        return ast.In(item, container, False, span=self._span(meta))

    def not_in_expr(self, meta, item, container):
        return ast.In(item, container, True, span=self._span(meta))

    def is_missing(self, meta, operand):
        return ast.IsMissing(operand, False, span=self._span(meta))

    def is_not_missing(self, meta, operand):
        return ast.IsMissing(operand, True, span=self._span(meta))

    def arith(self, meta, left, op: Token, right):
        return ast.Arith(str(op), left, right, span=self._span(meta))

    def negate(self, meta, _minus, operand):
        return ast.Negate(operand, span=self._span(meta))

    def attribute(self, meta, value, name: Token):
        return ast.Attribute(value, str(name), span=self._span(meta))

    def number(self, meta, token: Token):
        span = self._tok(token)
        return ast.Number(parse_number(str(token), span), text=str(token), span=span)

    def string(self, meta, token: Token):
        span = self._tok(token)
        return ast.String(parse_string(token, span), span=span)

    def true(self, meta):
        return ast.Bool(True, span=self._span(meta))

    def false(self, meta):
        return ast.Bool(False, span=self._span(meta))

    def today(self, meta):
        return ast.Today(span=self._span(meta))

    def name(self, meta, token: Token):
        return ast.Name(str(token), span=self._tok(token))

    def call(self, meta, func: Token, *args):
        return ast.Call(str(func), tuple(a for a in args if a is not None), span=self._span(meta))

    def set_literal(self, meta, *items):
        return ast.SetLiteral(tuple(i for i in items if i is not None), span=self._span(meta))

    def interval(self, meta, low_bound: Token, low, high, high_bound: Token):
        return ast.Interval(low, high, str(low_bound) == "[", str(high_bound) == "]", span=self._span(meta))
