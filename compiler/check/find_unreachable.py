"""Pass: rules, table rows, tree branches and scorecard bins that can never be chosen (warnings).

Input: a type-correct `Analysis`. Output: `unreachable_*` warnings naming the
earlier rules/rows/branches/bins that already cover every case the item
would match (or saying its condition is never true). Exact: conditions are
turned into sets of values (compiler.check.conditions) and covered-ness is decided
by subtracting those sets, not by sampling.
"""

from __future__ import annotations

from compiler.check.analysis import Analysis
from compiler.check.conditions import Conditions, names_assigned, names_read, tree_levels
from compiler.check.domains import TooComplex, intersect_unions, subtract_all
from dsl import ast


def find_unreachable(analysis: Analysis) -> None:
    conditions = Conditions(analysis)
    for statement in analysis.policy.statements:
        try:
            if isinstance(statement, ast.Rules):
                _rules(analysis, conditions, statement)
            elif isinstance(statement, ast.Table):
                _table_rows(analysis, conditions, statement)
            elif isinstance(statement, ast.Tree):
                _tree_branches(analysis, conditions, statement)
            elif isinstance(statement, ast.Scorecard):
                _scorecard_bins(analysis, conditions, statement)
        except TooComplex:
            continue


def _list(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _covering(space, matches: list, earlier: list[tuple[str, list]]) -> list[str]:
    """Names of earlier items that cover `matches`: a single one if one suffices, else all that overlap it."""
    overlapping = [(name, union) for name, union in earlier if intersect_unions(space, matches, union)]
    for name, union in overlapping:
        if not subtract_all(space, matches, union):
            return [name]
    return [name for name, _ in overlapping]


def _cover_phrase(noun: str, names: list[str], verb_single: str, verb_plural: str) -> str:
    if len(names) == 1:
        return f"{noun} {names[0]} already {verb_single}"
    return f"{noun}s {_list(names)} already {verb_plural}"


def _rules(analysis: Analysis, conditions: Conditions, statement: ast.Rules) -> None:
    space = conditions.space
    earlier: list[tuple[ast.Rule, list]] = []
    assigned_so_far: set[str] = set()
    for rule in statement.rules:
        when_true = conditions.truth(rule.condition)[0]
        if not when_true:
            analysis.warning(
                "unreachable_rule", f"rule {rule.id} can never fire: its condition is never true", rule.id_span
            )
        else:
            if statement.hit == "first":
                blockers = earlier
            else:
                # With `all`, only an earlier rule that stops the policy prevents this one from firing, and
                # only if nothing assigned in between changes what the conditions read.
                reads = names_read(rule.condition)
                blockers = [
                    (other, other_true)
                    for other, other_true in earlier
                    if any(isinstance(a, ast.Stop) for a in other.actions)
                ]
                if assigned_so_far & (reads | set().union(*(names_read(o.condition) for o, _ in blockers))):
                    blockers = []
            if blockers and not subtract_all(space, when_true, [box for _, t in blockers for box in t]):
                covering = _covering(space, when_true, [(other.id, t) for other, t in blockers])
                verbs = ("stops the policy", "stop the policy") if statement.hit == "all" else ("fires", "fire")
                analysis.warning(
                    "unreachable_rule",
                    f"rule {rule.id} can never fire: {_cover_phrase('rule', covering, *verbs)} "
                    "for every case it matches",
                    rule.id_span,
                )
        earlier.append((rule, when_true))
        assigned_so_far |= names_assigned(rule.actions)


def _table_rows(analysis: Analysis, conditions: Conditions, statement: ast.Table) -> None:
    space = conditions.space
    earlier: list[tuple[int, list]] = []
    for number, row in enumerate(statement.rows, start=1):
        matches = conditions.row_truth(row.tests, statement.inputs)
        if not matches:
            analysis.warning(
                "unreachable_row",
                f"row {number} of table '{statement.name}' can never match: no input passes all its tests",
                row.span,
            )
        elif (
            statement.hit == "first"
            and earlier
            and not subtract_all(space, matches, [box for _, m in earlier for box in m])
        ):
            covering = _covering(space, matches, [(str(n), m) for n, m in earlier])
            analysis.warning(
                "unreachable_row",
                f"row {number} of table '{statement.name}' can never match: "
                f"{_cover_phrase('row', covering, 'matches', 'match')} every input it matches",
                row.span,
            )
        earlier.append((number, matches))


def _tree_branches(analysis: Analysis, conditions: Conditions, statement: ast.Tree) -> None:
    for branch, path, condition_true, live in tree_levels(conditions, statement.branches):
        if branch is None or live:
            continue
        where = ".".join(str(n) for n in path)
        if not condition_true:
            reason = "its condition is never true"
        else:
            reason = "every case it matches is taken by an earlier branch or excluded by the branch it sits in"
        analysis.warning(
            "unreachable_branch",
            f"branch {where} of tree '{statement.name}' can never be taken: {reason}",
            branch.span,
        )


def _scorecard_bins(analysis: Analysis, conditions: Conditions, statement: ast.Scorecard) -> None:
    space = conditions.space
    for characteristic in statement.characteristics:
        earlier: list[tuple[int, list]] = []
        for number, bin_ in enumerate(characteristic.bins, start=1):
            matches = conditions.test_truth(bin_.test, characteristic.expr)
            if not matches:
                analysis.warning(
                    "unreachable_bin",
                    f"bin {number} can never match: no value of this characteristic passes it",
                    bin_.span,
                )
            elif earlier and not subtract_all(space, matches, [box for _, m in earlier for box in m]):
                covering = _covering(space, matches, [(str(n), m) for n, m in earlier])
                analysis.warning(
                    "unreachable_bin",
                    f"bin {number} can never match: {_cover_phrase('bin', covering, 'matches', 'match')} "
                    "every value it matches",
                    bin_.span,
                )
            earlier.append((number, matches))
