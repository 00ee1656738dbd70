"""Tests of the canonical formatter (`dsl.format`, behind `decide fmt`).

Golden cases pin the layout exactly; property tests check that formatting
never changes meaning (same AST), is idempotent, ignores the author's layout,
and keeps every comment, in order, next to the line it was written against.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dsl
from dsl import ast
from dsl.format import format_policy, format_source, number_text, quote, scan_comments
from tests.strategies import policies, policies_with_text

REPO = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).resolve().parent / "golden" / "format"
SPEC = Path(__file__).resolve().parents[2] / "shared" / "spec" / "policy-language.md"

GOLDEN_CASES = sorted(p.name.removesuffix(".input.policy") for p in GOLDEN.glob("*.input.policy"))

PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _spec_example() -> str:
    if not SPEC.exists():
        pytest.skip(f"spec not found at {SPEC}")
    match = re.search(r"## 1\. A whole example\s*```\n(.*?)```", SPEC.read_text(encoding="utf-8"), re.S)
    if match is None:
        pytest.skip("the spec has no section 1 example")
    return match.group(1)


def _comment_texts(text: str) -> list[str]:
    return [c.text for c in scan_comments(text)]


def _assert_safe(source: str) -> str:
    """Format `source` and check the three promises: same AST, same comments, idempotent."""
    formatted = format_source(source)
    assert dsl.parse(formatted) == dsl.parse(source)
    assert _comment_texts(formatted) == _comment_texts(source)
    assert format_source(formatted) == formatted
    return formatted


# ---------------------------------------------------------------- golden files


def test_golden_cases_exist() -> None:
    assert {"spacing", "tables", "parens", "comments", "tail_comments", "duplicates"} <= set(GOLDEN_CASES)


@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_golden(name: str) -> None:
    source = (GOLDEN / f"{name}.input.policy").read_text(encoding="utf-8")
    expected = (GOLDEN / f"{name}.expected.policy").read_text(encoding="utf-8")
    assert format_source(source, f"{name}.input.policy") == expected
    assert _assert_safe(source) == expected


@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_golden_expected_is_a_fixed_point(name: str) -> None:
    expected = (GOLDEN / f"{name}.expected.policy").read_text(encoding="utf-8")
    assert format_source(expected) == expected


def test_format_policy_without_source_places_comments_like_format_source() -> None:
    # Without the source, lines with no AST node (`input:`, `then:`) are
    # located by assuming comments directly above a line belong to it.
    source = (GOLDEN / "comments.input.policy").read_text(encoding="utf-8")
    expected = (GOLDEN / "comments.expected.policy").read_text(encoding="utf-8")
    assert format_policy(dsl.parse(source), scan_comments(source)) == expected


# ------------------------------------------------------- spec and policy files


def test_spec_example_round_trips() -> None:
    example = _spec_example()
    formatted = _assert_safe(example)
    # The spec's example is the house style: it is already canonical.
    assert formatted == example


def _repository_policies() -> list[Path]:
    # Globbed when the tests are collected: other people add policies and
    # golden files all the time, and each one is a free formatter test.
    return sorted((REPO / "policies").glob("*.policy")) + sorted((REPO / "tests" / "golden").rglob("*.policy"))


# The goldens meant not to parse are named for it: tests/golden/errors/syntax_*, reserved_* (a reserved word used
# as a name) and sections_* (sections out of order). Every other policy of the repository must parse and
# round-trip, and each of these must fail to parse: nothing is skipped because it happens not to parse.
NOT_PARSING_PREFIXES = ("syntax_", "reserved_", "sections_")
NOT_PARSING = [path for path in _repository_policies() if path.name.startswith(NOT_PARSING_PREFIXES)]
PARSING = [path for path in _repository_policies() if path not in NOT_PARSING]


@pytest.mark.parametrize("path", PARSING, ids=lambda p: str(p.relative_to(REPO)))
def test_repository_policy_round_trips(path: Path) -> None:
    source = dsl.decode_source(path.read_bytes(), str(path))
    dsl.parse(source, str(path))  # a policy that is not a syntax-error golden must parse
    _assert_safe(source)


@pytest.mark.parametrize("path", NOT_PARSING, ids=lambda p: p.stem)
def test_the_syntax_error_goldens_do_not_parse(path: Path) -> None:
    assert path.parent.name == "errors" and path.with_suffix(".expected").exists()
    with pytest.raises(dsl.PolicyError):
        dsl.parse(dsl.decode_source(path.read_bytes(), path.name), path.name)


# ----------------------------------------------------------- generated policies


@PROPERTY_SETTINGS
@given(policies())
def test_generated_policy_round_trips(policy: ast.Policy) -> None:
    text = format_policy(policy)
    assert dsl.parse(text) == policy
    assert format_source(text) == text


@PROPERTY_SETTINGS
@given(policies_with_text(), st.data())
def test_layout_does_not_matter(policy_and_text: tuple[ast.Policy, str], data: st.DataObject) -> None:
    """Re-indented text with stray blank lines and trailing spaces formats back to the canonical text."""
    _, canonical = policy_and_text
    width = data.draw(st.sampled_from([1, 2, 3, 8]), label="indent width")
    messy: list[str] = []
    for line in canonical.split("\n")[:-1]:
        depth = (len(line) - len(line.lstrip(" "))) // 4
        if data.draw(st.integers(0, 5)) == 0:
            messy.append(" " * data.draw(st.integers(0, 6)))  # extra (possibly space-only) blank line
        if not line and data.draw(st.booleans()):
            continue  # blank lines between blocks are optional
        trailing = " " * data.draw(st.integers(0, 2))
        messy.append(" " * (width * depth) + line.lstrip(" ") + trailing if line else line)
    assert format_source("\n".join(messy) + "\n") == canonical


# --------------------------------------------------------------------- comments

_comment_bodies = st.text(
    alphabet=st.one_of(st.sampled_from('ab #"\\|:{}-=>'), st.sampled_from("é中\xa0\x0c\u2028")), max_size=10
).map(lambda body: "#" + body.rstrip(" \t"))


@PROPERTY_SETTINGS
@given(policies_with_text(max_statements=3), st.data())
def test_comments_survive_in_every_position(policy_and_text: tuple[ast.Policy, str], data: st.DataObject) -> None:
    policy, canonical = policy_and_text
    lines = canonical.split("\n")[:-1]
    code_indexes = [i for i, line in enumerate(lines) if line]
    out: list[str] = []
    # For each inserted comment, in order: ("own", index of the code line it precedes) or ("trailing", index).
    placed: list[tuple[str, int | None]] = []
    for index, line in enumerate(lines):
        target = next((i for i in code_indexes if i >= index), None)
        for _ in range(data.draw(st.integers(0, 2) if data.draw(st.integers(0, 3)) == 0 else st.just(0))):
            out.append(" " * data.draw(st.integers(0, 10)) + data.draw(_comment_bodies))
            placed.append(("own", target))
        if line and data.draw(st.integers(0, 3)) == 0:
            line += " " * data.draw(st.integers(0, 3)) + data.draw(_comment_bodies)
            placed.append(("trailing", index))
        out.append(line)
    if data.draw(st.booleans()):
        if data.draw(st.booleans()):
            out.append("")
        for _ in range(data.draw(st.integers(1, 2))):
            out.append(" " * data.draw(st.integers(0, 4)) + data.draw(_comment_bodies))
            placed.append(("own", None))
    source = "\n".join(out) + "\n"

    formatted = format_source(source)
    assert dsl.parse(formatted) == policy
    assert format_source(formatted) == formatted
    found = scan_comments(formatted)
    assert [c.text for c in found] == [c.text for c in scan_comments(source)]
    assert len(found) == len(placed)

    result_lines = formatted.split("\n")
    last_code = max(i for i, line in enumerate(result_lines) if line.strip() and not line.lstrip().startswith("#"))
    for comment, (kind, index) in zip(found, placed):
        row = comment.line - 1
        if kind == "trailing":
            assert index is not None
            assert not comment.own_line
            assert result_lines[row][: comment.column - 1] == lines[index] + "  "
        elif index is None:
            assert comment.own_line and comment.column == 1 and row > last_code
        else:
            assert comment.own_line
            following = row + 1
            while result_lines[following].lstrip().startswith("#"):
                following += 1  # other comments before the same line
            code = result_lines[following]
            own_trailing = scan_comments(code)
            # A trailing comment on that line sits after two spaces; compare the code before them.
            assert (code[: own_trailing[0].column - 3] if own_trailing else code) == lines[index]
            indent = len(lines[index]) - len(lines[index].lstrip(" "))
            assert comment.column == indent + 1


def test_comment_marker_inside_string_is_not_a_comment() -> None:
    source = (
        'policy p:\n    title: "a # b \\" # c"  # real\ninput:\n    a: string in {"#", "\\\\"}\n'
        'output:\n    o: string = "x#y"\n'
    )
    assert [c.text for c in scan_comments(source)] == ["# real"]
    assert _comment_texts(format_source(source)) == ["# real"]


# ------------------------------------------------------------------ edge cases


def test_syntax_error_is_raised_untouched() -> None:
    bad = 'policy p:\n    title: "t"\ninput:\n    a: int\noutput:\n    o: int = (1\n'
    with pytest.raises(dsl.PolicySyntaxError) as from_parse:
        dsl.parse(bad, "bad.policy")
    with pytest.raises(dsl.PolicySyntaxError) as from_format:
        format_source(bad, "bad.policy")
    assert type(from_format.value) is dsl.PolicySyntaxError
    assert from_format.value.diagnostic == from_parse.value.diagnostic
    assert str(from_format.value).startswith("bad.policy:6:")


def test_crlf_bom_and_missing_final_newline() -> None:
    source = '\ufeffpolicy p:\r\n    title: "t"  # c\r\ninput:\r\n    a: int\r\noutput:\r\n    o: int = 0'
    assert format_source(source) == (
        'policy p:\n    title: "t"  # c\n\ninput:\n    a: int\n\noutput:\n    o: int = 0\n'
    )


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("plain", '"plain"'),
        ('say "hi"', r'"say \"hi\""'),
        ("back\\slash", r'"back\\slash"'),
        ("two\nlines", r'"two\nlines"'),
        ("a\tb", r'"a\tb"'),
        ("中文 é", '"中文 é"'),
    ],
)
def test_strings_are_re_escaped(value: str, literal: str) -> None:
    assert quote(value) == literal
    policy = dsl.parse(f"policy p:\n    title: {literal}\ninput:\n    a: int\noutput:\n    o: int = 0\n")
    assert policy.header.title == value


def test_unrepresentable_string_is_refused() -> None:
    with pytest.raises(ValueError):
        quote("carriage\rreturn")


@pytest.mark.parametrize(
    ("value", "text"), [(0, "0"), (42, "42"), (0.5, "0.5"), (2.0, "2.0"), (1e-05, "0.00001"), (-0.0, "0.0")]
)
def test_numbers_without_spelling(value: float, text: str) -> None:
    assert number_text(value) == text


def test_numbers_keep_their_spelling() -> None:
    source = (
        'policy p:\n    title: "t"\ninput:\n    a: number\noutput:\n    o: number = 1_000\n'
        "let x = a * 7.9% + 0.50 + 1_000_000\n"
    )
    formatted = format_source(source)
    assert "o: number = 1_000" in formatted
    assert "let x = a * 7.9% + 0.50 + 1_000_000" in formatted


def test_hand_built_ast_without_spellings() -> None:
    """ASTs built in code (no spans, no number spelling) still format to text that parses back."""
    policy = ast.Policy(
        ast.Header("p", title="t"),
        (ast.Field("a", ast.TypeRef("number"), modifiers=()), ast.Field("k", ast.TypeRef("string"), key=True)),
        (ast.Field("o", ast.TypeRef("number"), default=ast.Number(0.25)),),
        (
            ast.Scorecard(
                "s",
                -12.5,
                (ast.Characteristic(ast.Name("a"), None, (ast.Bin(ast.TestCompare("<", ast.Number(3)), -7),)),),
            ),
        ),
    )
    text = format_policy(policy)
    assert "scorecard s (base -12.5):" in text
    assert "< 3 => -7" in text
    assert "k: string key" in text
    assert dsl.parse(text) == policy


def test_rule_then_layout_is_kept() -> None:
    source = (
        'policy p:\n    title: "t"\ninput:\n    a: int\noutput:\n    o: int = 0\n'
        "rules r (first):\n    rule A:\n        when a > 1\n        then:\n            o = 1\n"
        "    rule B:\n        when a > 2\n        then o = 2, stop\n"
    )
    formatted = format_source(source)
    assert "        then:\n            o = 1\n" in formatted
    assert "        then o = 2, stop\n" in formatted
