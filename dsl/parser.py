"""Policy text -> AST. The only module that talks to Lark.

Input: policy source text (or bytes from a file) and the file name to report.
Output: a `dsl.ast.Policy`, or a `PolicySyntaxError` whose single diagnostic
says where (``FILE:LINE:COL``) and what was expected, in an analyst's words.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.indenter import Indenter

from dsl import ast
from dsl.build_ast import BuildAst
from dsl.diagnostics import ERROR, Diagnostic, Span
from dsl.errors import PolicySyntaxError

GRAMMAR_PATH = Path(__file__).with_name("grammar.lark")

RESERVED_WORDS = frozenset(
    "policy input output list let rules rule when then table scorecard tree reason stop "
    "otherwise missing is not and or in if else true false today".split()
)


class _IndentationError(Exception):
    def __init__(self, message: str, line: int, column: int, code: str) -> None:
        super().__init__(message)
        self.message, self.line, self.column, self.code = message, line, column, code


class _PolicyIndenter(Indenter):
    """Python-style INDENT/DEDENT tokens; tabs and inconsistent dedents are errors at their line."""

    NL_type = "_NL"
    OPEN_PAREN_types: list[str] = []
    CLOSE_PAREN_types: list[str] = []
    INDENT_type = "_INDENT"
    DEDENT_type = "_DEDENT"
    tab_len = 8

    def handle_NL(self, token: Token):
        yield token
        indent_str = token.rsplit("\n", 1)[-1] if "\n" in token else ""
        line = token.end_line
        if "\t" in indent_str:
            raise _IndentationError(
                "tab character in indentation; indent with spaces only", line, indent_str.index("\t") + 1, "tab"
            )
        indent = len(indent_str)
        if indent > self.indent_level[-1]:
            self.indent_level.append(indent)
            yield Token("_INDENT", indent_str, line=line, column=indent + 1, end_line=line, end_column=indent + 1)
            return
        open_levels = list(self.indent_level)
        while indent < self.indent_level[-1]:
            self.indent_level.pop()
            yield Token("_DEDENT", indent_str, line=line, column=indent + 1, end_line=line, end_column=indent + 1)
        if indent != self.indent_level[-1]:
            choices = " or ".join(str(level) for level in open_levels)
            raise _IndentationError(
                f"this line is indented {indent} space{'s' if indent != 1 else ''}, which matches no "
                f"enclosing block; indent it by {choices} spaces",
                line,
                indent + 1,
                "bad_indent",
            )


@lru_cache(maxsize=1)
def _lark() -> Lark:
    return Lark(
        GRAMMAR_PATH.read_text(encoding="utf-8"),
        parser="lalr",
        lexer="contextual",
        postlex=_PolicyIndenter(),
        propagate_positions=True,
        maybe_placeholders=True,
        cache=False,
    )


# The indenter keeps state between tokens, so one parse runs at a time.
_parse_lock = threading.Lock()

_TERMINAL_WORDS = {
    "NAME": "a name",
    "NUMBER": "a number",
    "INT_LITERAL": "a whole number",
    "STRING": "a string",
    "_NL": "the end of the line",
    "_INDENT": "an indented block",
    "_DEDENT": "the end of the block",
    "$END": "the end of the file",
    "COMPARE_OP": "a comparison (==, !=, <, <=, >, >=)",
    "ADD_OP": '"+" or "-"',
    "MUL_OP": '"*" or "/"',
    "MINUS": '"-"',
    "SCALAR_TYPE": "a type (int, number, bool, string, date)",
    "RULES_HIT": '"first" or "all"',
    "SORT_ORDER": '"asc" or "desc"',
    "LPAR": '"("',
    "RPAR": '")"',
    "LBRACKET": '"["',
    "RBRACKET": '"]"',
}

_EXPRESSION_START = {"NAME", "NUMBER", "STRING", "LPAR", "MINUS", "TRUE", "FALSE", "TODAY", "IF", "NOT"}
_OPERATORS = {"COMPARE_OP", "ADD_OP", "MUL_OP", "AND", "OR", "IN", "IS", "NOT", "DOT"}


def parse(text: str | bytes, filename: str = "<policy>") -> ast.Policy:
    """Parse policy text into an AST; raise `PolicySyntaxError` at the first syntax error."""
    source = decode_source(text, filename)
    if not source.strip() or all(line.lstrip().startswith("#") or not line.strip() for line in source.split("\n")):
        raise _syntax_error(
            "empty_policy",
            'the file has no policy; a policy starts with "policy NAME:"',
            Span(filename, 1, 1, 1, 1),
            source,
        )
    parse_text = source if source.endswith("\n") else source + "\n"
    try:
        with _parse_lock:
            tree = _lark().parse(parse_text)
    except _IndentationError as exc:
        span = Span(filename, exc.line, exc.column, exc.line, exc.column + 1)
        raise _syntax_error(exc.code, exc.message, span, source) from None
    except UnexpectedInput as exc:
        problem = _indentation_problem(source, filename, getattr(exc, "line", 0) or 0)
        raise (problem or _describe_unexpected(exc, filename, source)) from None
    try:
        return BuildAst(filename, parse_text).transform(tree)
    except PolicySyntaxError as exc:
        raise PolicySyntaxError(exc.diagnostic, source) from None


def decode_source(text: str | bytes, filename: str) -> str:
    """Bytes or text -> text with a trailing BOM removed and line endings normalised to \\n."""
    if isinstance(text, bytes):
        if b"\x00" in text:
            offset = text.index(b"\x00")
            raise _syntax_error(
                "binary_file",
                "this is a binary file, not policy text (it contains a NUL byte)",
                _span_at_byte(text, offset, filename),
                None,
            )
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _syntax_error(
                "not_utf8",
                f"the file is not valid UTF-8 text (byte 0x{text[exc.start]:02x} cannot be decoded); save it as UTF-8",
                _span_at_byte(text, exc.start, filename),
                None,
            ) from None
    if "\x00" in text:
        raise _syntax_error(
            "binary_file",
            "this is binary data, not policy text (it contains a NUL character)",
            Span(filename, 1, 1, 1, 1),
            None,
        )
    if text.startswith("\ufeff"):
        text = text[1:]
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _span_at_byte(data: bytes, offset: int, filename: str) -> Span:
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return Span(filename, line, column, line, column + 1)


def _syntax_error(code: str, message: str, span: Span, source: str | None) -> PolicySyntaxError:
    return PolicySyntaxError(Diagnostic(ERROR, code, message, span), source)


def _code_part(line: str) -> str:
    """A line without its trailing comment (a # outside a string), right-stripped."""
    quoted = False
    for position, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == "#" and not quoted:
            return line[:position].rstrip()
    return line.rstrip()


def _indentation_problem(source: str, filename: str, error_line: int) -> PolicySyntaxError | None:
    """The first line, at or before a syntax error, whose indentation does not fit the blocks around it.

    Lark only sees the indentation tokens, so it reports a wrongly indented line where the parse breaks,
    often the line after. This scan names the line that is wrong and the indentation it should have:
    two lines of one block indented differently, or a line that dedents to no enclosing block.
    """
    blocks: list[tuple[int, int]] = [(0, 0)]  # (indent, line of the block's first line), outermost first
    previous: tuple[int, int, str] | None = None  # (line, indent, code)
    for number, line in enumerate(source.split("\n"), start=1):
        if number > error_line:
            return None
        code = _code_part(line)
        if not code.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        current = blocks[-1][0]
        if previous is not None and indent > current:
            if previous[2].endswith(":"):
                blocks.append((indent, number))
            elif len(blocks) > 1 and blocks[-1][1] == previous[0]:
                # The block's first line and this one disagree: the usual step of 4 says which is wrong.
                opener = blocks[-2][0]
                wrong, expected = (previous, indent) if opener + 4 == indent else ((number, indent, code), current)
                other = number if wrong[0] == previous[0] else previous[0]
                return _syntax_error(
                    "inconsistent_indent",
                    f"this line is indented {wrong[1]} spaces, but line {other} of the same block is indented "
                    f"{indent if wrong[0] == previous[0] else current}; indent the lines of a block alike "
                    f"(expected {expected} spaces)",
                    Span(filename, wrong[0], wrong[1] + 1, wrong[0], wrong[1] + 2),
                    source,
                )
            else:
                return _syntax_error(
                    "unexpected_indent",
                    f"this line is indented {indent} spaces, more than the block it is in (expected {current} spaces, "
                    f'as line {previous[0]}); only a line ending in ":" opens a deeper block',
                    Span(filename, number, indent + 1, number, indent + 2),
                    source,
                )
        elif indent < current:
            closed = blocks[-1]
            while blocks[-1][0] > indent:
                closed = blocks.pop()
            if blocks[-1][0] != indent:
                return _syntax_error(
                    "inconsistent_indent",
                    f"this line is indented {indent} spaces, which matches no block around it: expected "
                    f"{closed[0]} spaces (as line {closed[1]}) or {blocks[-1][0]}"
                    + (f" (as line {blocks[-1][1]})" if blocks[-1][1] else ""),
                    Span(filename, number, indent + 1, number, indent + 2),
                    source,
                )
        previous = (number, indent, code)
    return None


def _describe_unexpected(exc: UnexpectedInput, filename: str, source: str) -> PolicySyntaxError:
    line = max(getattr(exc, "line", 1) or 1, 1)
    column = max(getattr(exc, "column", 1) or 1, 1)
    if isinstance(exc, UnexpectedCharacters):
        char = source[exc.pos_in_stream] if exc.pos_in_stream < len(source) else ""
        span = Span(filename, line, column, line, column + 1)
        if char == "\t":
            return _syntax_error("tab", "tab character; use spaces only", span, source)
        if char == '"':
            return _syntax_error(
                "unterminated_string", 'unterminated string: it needs a closing " on the same line', span, source
            )
        shown = char if char.isprintable() else repr(char)[1:-1]
        message = f'unexpected character "{shown}"'
        expected = _describe_expected(exc.allowed or set())
        if expected:
            message += f"; expected {expected}"
        return _syntax_error("unexpected_character", message, span, source)
    # The indenter always closes the text with a newline, so running out of text surfaces as an
    # UnexpectedToken of type $END rather than as UnexpectedEOF.
    assert isinstance(exc, UnexpectedToken)
    token = exc.token
    expected_names = set(exc.accepts or exc.expected)
    found = _describe_token(token)
    if token.type == "_NL":
        # Lark places a newline token at its start; point at the end of the line instead.
        span = Span(filename, token.line, token.column, token.line, token.column + 1)
    elif token.type == "$END":
        lines = source.split("\n")
        span = Span(filename, len(lines), len(lines[-1]) + 1, len(lines), len(lines[-1]) + 1)
    elif token.line > source.count("\n") + 1:
        # A token made from the newline appended to a file without one (an _INDENT/_DEDENT at the
        # very end): point at the end of the last real line instead.
        lines = source.split("\n")
        span = Span(filename, len(lines), len(lines[-1]) + 1, len(lines), len(lines[-1]) + 1)
    else:
        end_line = token.end_line or token.line
        end_column = token.end_column if token.end_line == token.line and token.end_column else token.column + 1
        span = Span(filename, token.line, token.column, end_line, max(end_column, token.column + 1))
    if token.type == "_INDENT":
        message = "unexpected indentation: this line is indented more than the block it is in"
        code = "unexpected_indent"
    elif token.type == "$END":
        expected = _describe_expected(expected_names)
        message = "the file ends too early" + (f"; expected {expected}" if expected else "")
        code = "unexpected_end"
    else:
        code = "unexpected_token"
        message = f"unexpected {found}"
        expected = _describe_expected(expected_names)
        if expected:
            message += f"; expected {expected}"
        if token.type == "EQUAL" and "COMPARE_OP" in expected_names:
            message += ' (to compare two values use "==")'
        elif token.type == "_NL" and "COLON" in expected_names and len(expected_names) <= 3:
            message = 'missing ":" at the end of this line'
            code = "missing_colon"
    return _syntax_error(code, message, span, source)


_FOUND_WORDS = {"_NL": "end of line", "_DEDENT": "end of block", "$END": "end of file"}


def _describe_token(token: Token) -> str:
    if token.type in _FOUND_WORDS:
        return _FOUND_WORDS[token.type]
    if token.type == "_INDENT":
        return "indentation"
    value = str(token.value)
    if token.type == "NAME":
        return f'name "{value}"'
    if value.lower() in RESERVED_WORDS and token.type != "STRING":
        return f'word "{value}" (a reserved word)'
    return f'"{value}"' if token.type != "STRING" else f"string {value}"


def _describe_expected(names: set[str]) -> str:
    names = {n for n in names if not n.startswith("__ANON") or _literal_of(n)}
    words: list[str] = []
    if {"NAME", "NUMBER"} <= names:
        names -= _EXPRESSION_START
        words.append("a value or expression")
    if {"ADD_OP", "MUL_OP"} <= names:
        names -= _OPERATORS
        words.append("an operator")
    for name in sorted(names):
        if name in _TERMINAL_WORDS:
            words.append(_TERMINAL_WORDS[name])
        else:
            literal = _literal_of(name)
            words.append(f'"{literal}"' if literal else name.lower())
    # Stable, readable order: phrases first, then literals.
    words = sorted(dict.fromkeys(words), key=lambda w: (w.startswith('"'), w))
    if not words:
        return ""
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def _literal_of(terminal_name: str) -> str | None:
    for terminal in _lark().terminals:
        if terminal.name == terminal_name:
            pattern = terminal.pattern
            if pattern.type == "str":
                return pattern.value
            return None
    return None
