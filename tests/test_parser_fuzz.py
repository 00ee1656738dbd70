"""Fuzz tests of the parser's failure behaviour.

Input: random text and bytes, policy-like token soup, and mutations of valid
policies (the spec's example, policies/*.policy, the formatter's golden files
and generated policies): deleted, inserted and duplicated characters, swapped,
deleted and duplicated lines, changed indentation, tabs, non-ASCII, truncation.
Output: pass when `dsl.parse` either returns a policy or raises
`PolicySyntaxError` whose one diagnostic points at a real place in the file
(line and column >= 1, within the text) and renders as
``FILE:LINE:COL: error: MESSAGE`` followed by that very source line.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import dsl
from tests.strategies import policy_texts

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SPEC = TESTS.parents[1] / "shared" / "spec" / "policy-language.md"
FILENAME = "fuzz/mutant.policy"

FUZZ_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _seed_policies() -> list[str]:
    seeds = [p.read_text(encoding="utf-8") for p in sorted((REPO / "policies").glob("*.policy"))]
    seeds += [p.read_text(encoding="utf-8") for p in sorted((TESTS / "golden" / "format").glob("*.policy"))]
    if SPEC.exists():
        match = re.search(r"## 1\. A whole example\s*```\n(.*?)```", SPEC.read_text(encoding="utf-8"), re.S)
        if match:
            seeds.append(match.group(1))
    return seeds


SEEDS = _seed_policies()


def check_parse(text: str | bytes, filename: str = FILENAME) -> None:
    """Parse `text`; any failure must be a well-placed, well-rendered PolicySyntaxError."""
    try:
        dsl.parse(text, filename)
    except dsl.PolicySyntaxError as error:
        diagnostic = error.diagnostic
        span = diagnostic.span
        assert diagnostic.is_error
        assert span.file == filename
        assert span.line >= 1 and span.column >= 1, span
        rendered = str(error)
        assert rendered.startswith(f"{filename}:{span.line}:{span.column}: error: "), rendered
        assert diagnostic.message and "\n" not in diagnostic.message
        _check_position(text, filename, span, rendered)


def _check_position(text: str | bytes, filename: str, span: dsl.Span, rendered: str) -> None:
    try:
        source = dsl.decode_source(text, filename)
    except dsl.PolicySyntaxError:
        return  # not text at all (NUL byte, bad UTF-8): positions are byte-based
    # Only \n breaks lines for the lexer; str.splitlines() would also split on
    # \x0c, \x85, \u2028 and others, which may sit in strings and comments.
    lines = source.split("\n")
    assert span.line <= len(lines), f"line {span.line} of a {len(lines)}-line text"
    line = lines[span.line - 1]
    assert span.column <= len(line) + 1, f"column {span.column} of a {len(line)}-character line"
    excerpt = rendered.split("\n")[1:2]
    if excerpt:
        gutter = f"{span.line:>4} | "
        assert excerpt[0].startswith(gutter)
        shown = excerpt[0][len(gutter) :]
        if shown != line:
            # A very long line is shown as a window, cut ends marked with "...".
            assert shown.startswith("...") or shown.endswith("..."), "the excerpt quotes a different line"
            assert shown.removeprefix("...").removesuffix("...") in line, "the excerpt quotes a different line"


# ------------------------------------------------------------------ mutations

_NOISE = st.sampled_from(
    [
        '"',
        "#",
        "|",
        "||",
        ":",
        "(",
        ")",
        "{",
        "}",
        "[",
        "]",
        ".",
        "..",
        "-",
        "=",
        "==",
        "=>",
        "<",
        ">=",
        "%",
        "_",
        ",",
        "\\",
        " ",
        "    ",
        "\n",
        "\r",
        "\r\n",
        "\t",
        "é",
        "中",
        "😀",
        "\u200b",
        "\ufeff",
        "\xa0",
        "\u2028",
        "\x0c",
        "\x00",
        "0",
        "1_0",
        "9%",
        "a",
        "not ",
        " in ",
        "is missing",
        "otherwise",
        "rule",
    ]
)
_NON_ASCII = st.sampled_from(["é", "ß", "中文", "😀", "\u200b", "\ufeff", "\xa0", "\u0301", "\U0010ffff"])


def _position(draw: st.DrawFn, text: str) -> int:
    return draw(st.integers(0, len(text)))


def _line_index(draw: st.DrawFn, lines: list[str]) -> int:
    return draw(st.integers(0, len(lines) - 1))


def _mutate_once(draw: st.DrawFn, text: str) -> str:
    op = draw(
        st.sampled_from(
            [
                "delete",
                "insert",
                "duplicate",
                "swap_lines",
                "delete_line",
                "duplicate_line",
                "indent",
                "dedent",
                "tab",
                "non_ascii",
                "truncate",
            ]
        )
    )
    at = _position(draw, text)
    lines = text.split("\n")
    if op == "delete":
        return text[:at] + text[at + draw(st.integers(1, 5)) :]
    if op == "insert":
        return text[:at] + draw(_NOISE) + text[at:]
    if op == "duplicate":
        end = min(len(text), at + draw(st.integers(1, 12)))
        return text[:end] + text[at:end] + text[end:]
    if op == "swap_lines":
        first, second = _line_index(draw, lines), _line_index(draw, lines)
        lines[first], lines[second] = lines[second], lines[first]
    elif op == "delete_line":
        del lines[_line_index(draw, lines)]
    elif op == "duplicate_line":
        index = _line_index(draw, lines)
        lines.insert(index, lines[index])
    elif op == "indent":
        index = _line_index(draw, lines)
        lines[index] = " " * draw(st.integers(1, 9)) + lines[index]
    elif op == "dedent":
        index = _line_index(draw, lines)
        lines[index] = lines[index][draw(st.integers(1, 9)) :] if lines[index].startswith(" ") else lines[index]
    elif op == "tab":
        return text[:at] + "\t" + text[at:]
    elif op == "non_ascii":
        return text[:at] + draw(_NON_ASCII) + text[at:]
    else:
        return text[:at]
    return "\n".join(lines)


@st.composite
def mutants(draw: st.DrawFn, seeds: st.SearchStrategy[str]) -> str:
    text = draw(seeds)
    for _ in range(draw(st.integers(1, 4))):
        text = _mutate_once(draw, text)
    return text


_TOKENS = st.sampled_from(
    [
        "policy",
        "input",
        "output",
        "list",
        "let",
        "rules",
        "rule",
        "when",
        "then",
        "table",
        "scorecard",
        "tree",
        "reason",
        "stop",
        "otherwise",
        "missing",
        "is",
        "not",
        "and",
        "or",
        "in",
        "if",
        "else",
        "true",
        "false",
        "today",
        "title",
        "kind",
        "first",
        "all",
        "collect",
        "sort",
        "desc",
        "limit",
        "base",
        "int",
        "string",
        "of",
        "optional",
        "key",
        "pii",
        "x",
        "score",
        "_a1",
        "42",
        "7.9%",
        "1_000",
        "1__0",
        "0.",
        '"s"',
        '"\\q"',
        '"',
        ":",
        ",",
        "(",
        ")",
        "{",
        "}",
        "[",
        "]",
        "..",
        "|",
        "||",
        "=",
        "==",
        "=>",
        "<",
        "!=",
        "+",
        "-",
        "*",
        "/",
        ".",
        "#c",
        "\n",
        "\n    ",
        "\n        ",
        "\n  ",
        " ",
        "\t",
        "\r",
    ]
)
_policy_like = st.lists(_TOKENS, max_size=60).map(" ".join) | st.lists(_TOKENS, max_size=60).map("".join)


# --------------------------------------------------------------------- tests


def test_seeds_are_valid_policies() -> None:
    assert SEEDS, "no seed policies found"
    for seed in SEEDS:
        dsl.parse(seed, "seed.policy")


@FUZZ_SETTINGS
@given(st.text(max_size=300))
@example("")
@example("\ufeff")
@example("policy")
@example('policy p:\n\ttitle: "t"\n')
def test_random_text(text: str) -> None:
    check_parse(text)


@FUZZ_SETTINGS
@given(_policy_like)
def test_policy_like_token_soup(text: str) -> None:
    check_parse(text)


@FUZZ_SETTINGS
@given(st.binary(max_size=200) | _policy_like.map(lambda t: t.encode("utf-8", "surrogatepass")))
@example(b"\xff\xfe")
@example(b'policy p:\n    title: "\xc3\x28"\n')
@example(b"\xef\xbb\xbfpolicy p:\r\n")
def test_random_bytes(data: bytes) -> None:
    check_parse(data)


@FUZZ_SETTINGS
@given(mutants(st.sampled_from(SEEDS)))
def test_mutated_policies(text: str) -> None:
    check_parse(text)


@FUZZ_SETTINGS
@given(mutants(policy_texts(max_statements=3)))
def test_mutated_generated_policies(text: str) -> None:
    check_parse(text)


@FUZZ_SETTINGS
@given(mutants(st.sampled_from(SEEDS)))
def test_mutated_policies_as_bytes(text: str) -> None:
    check_parse(text.encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize(
    "text",
    [
        'policy p:\n    title: "t"\n\tinput:\n',  # tab
        'policy p:\n    title: "unterminated\ninput:\n',
        'policy p:\n    title: "t"\n  input:\n',  # dedent to no enclosing level
        'policy p:\n    title: "t"\ninput:\n    a: int\noutput:\n    o: int = 1__0\n',  # malformed number
        'policy p:\n    title: "\\q"\n',  # unknown escape
        'policy p:\n    title: "t"\ninput:\n    a: int\noutput:\n    o: int = 99999999999999999999\n',
        'policy p:\n    title: "t"\ninput',  # ends too early
        "# only a comment\n",
    ],
)
def test_known_errors_are_placed_and_rendered(text: str) -> None:
    with pytest.raises(dsl.PolicySyntaxError):
        dsl.parse(text, FILENAME)
    check_parse(text)


@pytest.mark.parametrize(
    "text",
    [
        # Regressions: lines were once counted with str.splitlines(), which also
        # splits on \x0c, \x85, \u2028...; the lexer splits only on \n.
        "#\x0cx",
        'policy p:\n  title: "a\x0cb"\n  kind: ?\n',
        'policy p:\n  title: "a\u2028b\x85c"\ninput:',
        # Regression: an unexpected end of block in a file without a final
        # newline was once reported on the line after the last one.
        'policy p:\n    title: "t"\ninput:\n    a: int\noutput:\n    o: int = 0\ntree t:\n    a:',
    ],
)
def test_positions_count_only_newlines(text: str) -> None:
    with pytest.raises(dsl.PolicySyntaxError) as raised:
        dsl.parse(text, FILENAME)
    span = raised.value.diagnostic.span
    lines = text.split("\n")
    assert 1 <= span.line <= len(lines)
    assert str(raised.value).split("\n")[1] == f"{span.line:>4} | {lines[span.line - 1]}"
