"""Canonical formatter for policy text: the engine behind `decide fmt`.

Input: policy source text (`format_source`), or an AST plus the comments
scanned from its source (`format_policy`).
Output: the same policy in canonical layout: 4-space indentation, one blank
line between top-level blocks (a run of `list` one-liners, or of `let`
one-liners, stays together), normalised spacing, the fewest parentheses the
operator precedence allows, numbers as the author wrote them, strings
re-escaped, decision tables with aligned columns, and every comment kept.
Parsing the output gives an AST equal to the input's, and formatting the
output again changes nothing.
"""

from __future__ import annotations

import unicodedata
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from dsl import ast
from dsl.comments import comment_start
from dsl.diagnostics import Span
from dsl.errors import InternalCompilerError
from dsl.parser import decode_source, parse

__all__ = ["Comment", "format_policy", "format_source", "scan_comments"]

INDENT = "    "


@dataclass(frozen=True, slots=True)
class Comment:
    """A `#` comment found in policy source."""

    line: int  # 1-based source line
    column: int  # 1-based column of the `#`
    text: str  # from `#` to the end of the line, trailing spaces and tabs removed
    own_line: bool  # nothing but white space before it on its line


def scan_comments(source: str) -> tuple[Comment, ...]:
    """Every comment in `source` (already decoded text), in source order."""
    comments = []
    # split("\n"), not splitlines(): the lexer counts only \n as a line break, and
    # strings and comments may contain \x0c, \x85, \u2028 and friends.
    for number, line in enumerate(source.split("\n"), start=1):
        start = comment_start(line)
        if start >= 0:
            # Only spaces and tabs count as trailing white space: a comment may
            # end in \xa0 or \u2028, which str.rstrip() would also eat.
            comments.append(Comment(number, start + 1, line[start:].rstrip(" \t"), not line[:start].strip()))
    return tuple(comments)


def format_source(text: str, filename: str = "<policy>") -> str:
    """Parse policy text and return it in canonical layout.

    Raises the parser's `PolicySyntaxError` untouched when the text does not
    parse, and `InternalCompilerError` if the result would not mean exactly
    what the input meant (a formatter bug: better no output than a policy
    that silently decides differently).
    """
    source = decode_source(text, filename)
    policy = parse(source, filename)
    comments = scan_comments(source)
    result = format_policy(policy, comments, source=source)
    _verify(policy, comments, result, filename)
    return result


def format_policy(policy: ast.Policy, comments: Iterable[Comment] = (), *, source: str | None = None) -> str:
    """Canonical text of a policy AST, with `comments` re-attached by source line.

    `source` (the text the AST was parsed from) is optional; with it, lines
    that have no AST node of their own (`input:`, `output:`, `then:`) are
    located exactly, so comments next to them land on the right side, and
    constructs the AST does not keep in full (a repeated header item or `in`
    modifier, which the checker reports) are carried over rather than dropped.
    """
    printer = _Printer(source, comments)
    printer.policy(policy)
    return printer.render()


def _verify(policy: ast.Policy, comments: Sequence[Comment], result: str, filename: str) -> None:
    try:
        again = parse(result, filename)
    except Exception as exc:  # any failure here is the formatter's fault, not the author's
        raise InternalCompilerError(f"the formatter produced text that does not parse: {exc}") from exc
    if again != policy:
        raise InternalCompilerError("the formatter changed the meaning of the policy")
    if [c.text for c in scan_comments(result)] != [c.text for c in comments]:
        raise InternalCompilerError("the formatter lost or altered a comment")


# ------------------------------------------------------------------ literals


def quote(value: str) -> str:
    """A string literal for `value`, using the language's four escapes."""
    if "\r" in value or "\x00" in value:
        # Line endings are normalised and NUL is rejected before lexing, so no
        # literal can denote these characters.
        raise ValueError(f"a policy string cannot contain {value!r}")
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


def number_text(value: int | float) -> str:
    """Source text for a non-negative number that has no recorded spelling."""
    if isinstance(value, bool) or value < 0:
        raise ValueError(f"{value!r} is not a number literal; negative numbers are written with unary minus")
    if isinstance(value, int):
        return str(value)
    # The grammar has no exponent notation, and the decimal point must stay so
    # the value parses back as a float rather than an int.
    text = format(Decimal(repr(abs(float(value)))), "f")  # abs: -0.0 is not a negative literal
    return text if "." in text else text + ".0"


def _unquote(literal: str) -> str:
    """The value of a string literal the parser has already accepted."""
    escapes = {'"': '"', "\\": "\\", "n": "\n", "t": "\t"}
    out: list[str] = []
    index = 1
    while index < len(literal) - 1:
        char = literal[index]
        if char == "\\":
            out.append(escapes[literal[index + 1]])
            index += 2
        else:
            out.append(char)
            index += 1
    return "".join(out)


def _signed_text(value: int | float) -> str:
    return "-" + number_text(-value) if value < 0 else number_text(value)


def _squeeze_spaces(code: str) -> str:
    """Runs of spaces outside string literals become one space."""
    out: list[str] = []
    in_string = False
    index = 0
    while index < len(code):
        char = code[index]
        if in_string and char == "\\":
            out.append(code[index : index + 2])
            index += 2
            continue
        if char == '"':
            in_string = not in_string
        if char == " " and not in_string and out and out[-1] == " ":
            index += 1
            continue
        out.append(char)
        index += 1
    return "".join(out)


def _display_width(text: str) -> int:
    """Terminal columns `text` occupies, so tables with CJK text still line up."""
    width = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _display_width(text))


# --------------------------------------------------------------- expressions

# Binding strength, loosest first, matching dsl/grammar.lark.
_IF, _OR, _AND, _NOT, _COMPARE, _SUM, _PRODUCT, _UNARY, _POSTFIX, _ATOM = range(10)


def _precedence(node: object) -> int:
    if isinstance(node, ast.IfElse):
        return _IF
    if isinstance(node, ast.Or):
        return _OR
    if isinstance(node, ast.And):
        return _AND
    if isinstance(node, ast.Not):
        return _NOT
    if isinstance(node, (ast.Compare, ast.In, ast.IsMissing)):
        return _COMPARE
    if isinstance(node, ast.Arith):
        return _SUM if node.op in ("+", "-") else _PRODUCT
    if isinstance(node, ast.Negate):
        return _UNARY
    if isinstance(node, ast.Attribute):
        return _POSTFIX
    return _ATOM


def expr(node: ast.Expr, level: int = _IF) -> str:
    """Source text of an expression that parses back to `node` where the grammar wants `level`."""
    text = _expr_text(node)
    return f"({text})" if _precedence(node) < level else text


def _expr_text(node: ast.Expr) -> str:
    if isinstance(node, ast.Number):
        return node.text or number_text(node.value)
    if isinstance(node, ast.String):
        return quote(node.value)
    if isinstance(node, ast.Bool):
        return "true" if node.value else "false"
    if isinstance(node, ast.Today):
        return "today"
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Call):
        return f"{node.func}({', '.join(expr(arg) for arg in node.args)})"
    if isinstance(node, ast.Attribute):
        return f"{expr(node.value, _POSTFIX)}.{node.field}"
    if isinstance(node, ast.Negate):
        return f"-{expr(node.operand, _UNARY)}"
    if isinstance(node, ast.Arith):
        # Left-associative: the right operand needs the next tighter level.
        own = _precedence(node)
        return f"{expr(node.left, own)} {node.op} {expr(node.right, own + 1)}"
    if isinstance(node, ast.Compare):
        # Comparisons do not chain, so both sides are sums.
        return f"{expr(node.left, _SUM)} {node.op} {expr(node.right, _SUM)}"
    if isinstance(node, ast.In):
        keyword = "not in" if node.negated else "in"
        return f"{expr(node.item, _SUM)} {keyword} {_container(node.container)}"
    if isinstance(node, ast.IsMissing):
        return f"{expr(node.operand, _SUM)} is {'not ' if node.negated else ''}missing"
    if isinstance(node, ast.And):
        return f"{expr(node.left, _AND)} and {expr(node.right, _NOT)}"
    if isinstance(node, ast.Or):
        return f"{expr(node.left, _OR)} or {expr(node.right, _AND)}"
    if isinstance(node, ast.Not):
        return f"not {expr(node.operand, _NOT)}"
    if isinstance(node, ast.IfElse):
        return f"if {expr(node.condition)} then {expr(node.then)} else {expr(node.otherwise)}"
    raise TypeError(f"not an expression: {node!r}")


def _container(node: ast.Expr | ast.SetLiteral | ast.Interval) -> str:
    if isinstance(node, ast.SetLiteral):
        return set_literal(node)
    if isinstance(node, ast.Interval):
        return interval(node)
    return expr(node, _SUM)


def set_literal(node: ast.SetLiteral) -> str:
    return "{" + ", ".join(expr(item) for item in node.items) + "}"


def interval(node: ast.Interval) -> str:
    low = "[" if node.low_closed else "("
    high = "]" if node.high_closed else ")"
    return f"{low}{expr(node.low, _SUM)}..{expr(node.high, _SUM)}{high}"


def unary_test(node: ast.UnaryTest) -> str:
    """A table cell or scorecard bin test."""
    if isinstance(node, ast.TestAny):
        return "-"
    if isinstance(node, ast.TestOtherwise):
        return "otherwise"
    if isinstance(node, ast.TestMissing):
        return "not missing" if node.negated else "missing"
    if isinstance(node, ast.TestCompare):
        # `== x` and a bare `x` parse alike; the bare form is what authors write.
        operand = expr(node.operand, _SUM)
        return operand if node.op == "==" else f"{node.op} {operand}"
    if isinstance(node, ast.TestInterval):
        return interval(node.interval)
    if isinstance(node, ast.TestSet):
        return ("not " if node.negated else "") + set_literal(node.items)
    raise TypeError(f"not a unary test: {node!r}")


def action(node: ast.Action) -> str:
    if isinstance(node, ast.Assign):
        return f"{node.target} = {expr(node.expr)}"
    if isinstance(node, ast.AddReason):
        return f"reason {expr(node.expr)}"
    if isinstance(node, ast.Stop):
        return "stop"
    raise TypeError(f"not an action: {node!r}")


# ------------------------------------------------------------------- layout


@dataclass(slots=True)
class _Line:
    depth: int
    text: str
    source_line: int  # 0 when unknown (an AST built by hand)


_BLANK = None


class _Printer:
    """Lays a policy out line by line, remembering each line's source line for comments."""

    def __init__(self, source: str | None, comments: Iterable[Comment]) -> None:
        self.lines: list[_Line | None] = []
        self.comments = sorted(comments, key=lambda c: (c.line, c.column))
        self.source_lines = source.split("\n") if source is not None else None
        self.code_lines: list[int] | None = None
        if self.source_lines is not None:
            self.code_lines = [n for n, text in enumerate(self.source_lines, start=1) if self._code(n)]
        self.own_line_comments = {c.line for c in self.comments if c.own_line}

    # -------------------------------------------------------------- helpers

    def emit(self, depth: int, text: str, source_line: int) -> None:
        self.lines.append(_Line(depth, text, source_line))

    def blank(self) -> None:
        if self.lines and self.lines[-1] is not _BLANK:
            self.lines.append(_BLANK)

    def _code(self, line: int) -> str:
        """The code on a source line, without indentation or comment ("" if unknown)."""
        if self.source_lines is None or not 0 < line <= len(self.source_lines):
            return ""
        text = self.source_lines[line - 1]
        start = comment_start(text)
        return (text if start < 0 else text[:start]).strip()

    def line_before(self, line: int) -> int:
        """Source line of a keyword-only line (`input:`, `then:`) that precedes `line`."""
        if line <= 0:
            return 0
        if self.code_lines is not None:
            index = bisect_left(self.code_lines, line)
            return self.code_lines[index - 1] if index else 0
        # Without the source, assume comments directly above `line` belong to it.
        candidate = line - 1
        while candidate in self.own_line_comments:
            candidate -= 1
        return max(candidate, 0)

    # ----------------------------------------------------------- structure

    def policy(self, policy: ast.Policy) -> None:
        self.header(policy.header)
        self.blank()
        self.fields("input", policy.inputs)
        self.blank()
        self.fields("output", policy.outputs)
        previous: ast.Statement | None = None
        for statement in policy.statements:
            # A run of `list` lines, or of `let` lines, reads as one block; a
            # list run and a let run are separate blocks, as in the spec's example.
            if not (isinstance(statement, (ast.ListDecl, ast.Let)) and type(statement) is type(previous)):
                self.blank()
            self.statement(statement)
            previous = statement

    def header(self, header: ast.Header) -> None:
        self.emit(0, f"policy {header.name}:", header.name_span.line)
        values = {"title": header.title, "kind": header.kind, "description": header.description, "owner": header.owner}
        seen: set[str] = set()
        for key, span in header.items:
            if key not in seen:
                seen.add(key)
                value = values[key]
                if value is not None:
                    self.emit(1, self._header_item(key, value), span.line)
            else:
                # The AST keeps only the first of a repeated item; the checker
                # reports the repetition, so it must survive formatting.
                repeated = self._repeated_header_value(key, span)
                if repeated is not None:
                    self.emit(1, self._header_item(key, repeated), span.line)
        for key in ("title", "kind", "description", "owner"):
            if key not in seen and values[key] is not None:
                self.emit(1, self._header_item(key, values[key]), 0)

    @staticmethod
    def _header_item(key: str, value: str) -> str:
        return f"{key}: {value}" if key == "kind" else f"{key}: {quote(value)}"

    def _repeated_header_value(self, key: str, span: Span) -> str | None:
        code = self._code(span.line)
        if not code:
            return None
        value = code.split(":", 1)[1].strip()
        return value if key == "kind" else _unquote(value)

    def fields(self, section: str, fields: tuple[ast.Field, ...]) -> None:
        first_line = fields[0].span.line if fields else 0
        self.emit(0, f"{section}:", self.line_before(first_line))
        for field in fields:
            self.emit(1, self.field(field), field.span.line)

    def field(self, field: ast.Field) -> str:
        if field.modifiers.count("in") > 1:
            # The AST keeps only the first `in` constraint; keep the author's
            # line so the checker still sees (and reports) both.
            code = self._code(field.span.line)
            if code:
                return _squeeze_spaces(code)
        parts = [f"{field.name}: {field.type}"]
        flags = {"optional": field.optional, "key": field.key, "pii": field.pii, "in": field.allowed is not None}
        written: list[str] = []
        for modifier in field.modifiers:
            if flags.get(modifier) and not (modifier == "in" and "in" in written):
                written.append(modifier)
        written += [name for name in ("key", "pii", "optional", "in") if flags[name] and name not in written]
        for modifier in written:
            if modifier == "in":
                assert field.allowed is not None
                parts.append(f"in {_container(field.allowed)}")
            else:
                parts.append(modifier)
        if field.default is not None:
            parts.append(f"= {expr(field.default)}")
        return " ".join(parts)

    # ----------------------------------------------------------- statements

    def statement(self, node: ast.Statement) -> None:
        if isinstance(node, ast.ListDecl):
            members = f" = {set_literal(node.members)}" if node.members is not None else ""
            self.emit(0, f"list {node.name}: {node.element_type}{members}", node.span.line)
        elif isinstance(node, ast.Let):
            self.emit(0, f"let {node.name} = {expr(node.expr)}", node.span.line)
        elif isinstance(node, ast.Rules):
            self.rules(node)
        elif isinstance(node, ast.Table):
            self.table(node)
        elif isinstance(node, ast.Scorecard):
            self.scorecard(node)
        elif isinstance(node, ast.Tree):
            self.emit(0, f"tree {node.name}:", node.span.line)
            for branch in node.branches:
                self.branch(branch, 1)
        else:
            raise TypeError(f"not a statement: {node!r}")

    def rules(self, node: ast.Rules) -> None:
        self.emit(0, f"rules {node.name} ({node.hit}):", node.span.line)
        for rule in node.rules:
            label = f" {quote(rule.label)}" if rule.label is not None else ""
            self.emit(1, f"rule {rule.id}{label}:", rule.span.line)
            self.emit(2, f"when {expr(rule.condition)}", rule.condition.span.line)
            first_action_line = rule.actions[0].span.line if rule.actions else 0
            if rule.then_block:
                self.emit(2, "then:", self.line_before(first_action_line))
                for item in rule.actions:
                    self.emit(3, action(item), item.span.line)
            else:
                self.emit(2, "then " + ", ".join(action(item) for item in rule.actions), first_action_line)

    def table(self, node: ast.Table) -> None:
        hit = node.hit
        if node.hit == "collect":
            if node.sort_column is not None:
                hit += f" sort {node.sort_column} {'desc' if node.sort_descending else 'asc'}"
            if node.limit is not None:
                hit += f" limit {node.limit}"
        self.emit(0, f"table {node.name} ({hit}):", node.span.line)
        header_line = node.inputs[0].span.line if node.inputs else node.outputs[0].span.line if node.outputs else 0
        grid = [([expr(e) for e in node.inputs], [column.name for column in node.outputs], header_line)]
        grid += [
            ([unary_test(t) for t in row.tests], [expr(e) for e in row.results], row.span.line) for row in node.rows
        ]
        # Rows may (erroneously) differ in length; align each column over the rows that have it.
        in_widths = _column_widths(cells for cells, _, _ in grid)
        out_widths = _column_widths(cells for _, cells, _ in grid)
        for inputs, outputs, line in grid:
            left = "".join(f"| {_pad(cell, in_widths[i])} " for i, cell in enumerate(inputs))
            right = " | ".join(_pad(cell, out_widths[i]) for i, cell in enumerate(outputs))
            self.emit(1, f"{left}|| {right} |", line)

    def scorecard(self, node: ast.Scorecard) -> None:
        if node.base_text:
            base = f" (base {node.base_text})"
        elif node.base_text is not None or node.base != 0:
            base = f" (base {_signed_text(node.base)})"
        else:
            base = ""
        self.emit(0, f"scorecard {node.name}{base}:", node.span.line)
        for characteristic in node.characteristics:
            label = f" {quote(characteristic.label)}" if characteristic.label is not None else ""
            self.emit(1, f"{expr(characteristic.expr)}{label}:", characteristic.span.line)
            for item in characteristic.bins:
                points = item.points_text or _signed_text(item.points)
                reason = f" reason {quote(item.reason)}" if item.reason is not None else ""
                self.emit(2, f"{unary_test(item.test)} => {points}{reason}", item.span.line)

    def branch(self, node: ast.Branch, depth: int) -> None:
        condition = "otherwise" if node.condition is None else expr(node.condition)
        self.emit(depth, f"{condition}:", node.span.line)
        for item in node.body:
            if isinstance(item, ast.Branch):
                self.branch(item, depth + 1)
            else:
                self.emit(depth + 1, action(item), item.span.line)

    # ------------------------------------------------------------- comments

    def render(self) -> str:
        lines = list(self.lines)
        while lines and lines[-1] is _BLANK:
            lines.pop()
        code = [line for line in lines if line is not None]
        by_source_line = {line.source_line: line for line in code if line.source_line > 0}
        before: dict[int, list[Comment]] = {}  # id(line) -> comments to put above it
        trailing: dict[int, str] = {}
        at_end: list[Comment] = []
        known = sorted(by_source_line)
        for comment in self.comments:
            target = by_source_line.get(comment.line)
            if not comment.own_line and target is not None:
                trailing[id(target)] = comment.text
                continue
            following = next((n for n in known if n > comment.line), None)
            if following is None:
                at_end.append(comment)
            else:
                before.setdefault(id(by_source_line[following]), []).append(comment)
        out: list[str] = []
        for line in lines:
            if line is None:
                out.append("")
                continue
            indent = INDENT * line.depth
            out.extend(indent + comment.text for comment in before.get(id(line), ()))
            suffix = f"  {trailing[id(line)]}" if id(line) in trailing else ""
            out.append(indent + line.text + suffix)
        if at_end:
            last_code = max(known, default=0)
            # Keep the author's separation between the policy and closing remarks.
            if out and at_end[0].line > last_code + 1:
                out.append("")
            out.extend(comment.text for comment in at_end)
        return "\n".join(out) + "\n"


def _column_widths(rows: Iterable[list[str]]) -> list[int]:
    widths: list[int] = []
    for cells in rows:
        for index, cell in enumerate(cells):
            if index == len(widths):
                widths.append(0)
            widths[index] = max(widths[index], _display_width(cell))
    return widths
