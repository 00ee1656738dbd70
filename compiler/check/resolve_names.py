"""Pass: declare every name in source order and bind each use to its declaration.

Input: `Analysis` with the parsed policy. Output: `analysis.symbols` (inputs,
outputs, `reasons`, lists, lets, scorecards, table results),
`analysis.statement_names`, and `analysis.bindings` from each `ast.Name` to
its `Symbol`; diagnostics for unknown names (with a suggestion), use before
definition, duplicate names and rule IDs, assignments to anything but an
output, and table rows whose cell count does not match the header.
"""

from __future__ import annotations

import difflib

from compiler.check.analysis import (
    COLLECT_TABLE,
    INPUT,
    LET,
    LIST,
    OUTPUT,
    REASONS,
    SCORECARD,
    TABLE_COLUMN,
    Analysis,
    Symbol,
)
from dsl import ast
from dsl.diagnostics import NO_SPAN, Span


def resolve_names(analysis: Analysis) -> None:
    _Resolver(analysis).run()


class _Resolver:
    def __init__(self, analysis: Analysis) -> None:
        self.analysis = analysis
        self.rule_ids: dict[str, Span] = {}

    def run(self) -> None:
        policy = self.analysis.policy
        for field in policy.inputs:
            self.declare(field.name, INPUT, field.name_span, field, -1)
        for field in policy.outputs:
            if field.name != "reasons":
                self.declare(field.name, OUTPUT, field.name_span, field, -1)
        self.analysis.symbols["reasons"] = Symbol("reasons", REASONS, NO_SPAN, None, -1, nullable=False)
        for field in policy.outputs:
            if field.default is not None:
                self.bind_expr(field.default, -1)
        for index, statement in enumerate(policy.statements):
            getattr(self, "statement_" + type(statement).__name__.lower())(statement, index)

    # ------------------------------------------------------------- declarations

    def declare(self, name: str, kind: str, span: Span, node, order: int, *, own_statement: str | None = None) -> None:
        symbols = self.analysis.symbols
        if name in symbols:
            first = symbols[name]
            where = f" (first declared at line {first.span.line})" if first.span.line else ""
            self.analysis.error("duplicate_name", f"'{name}' is already declared as {first.kind}{where}", span)
            return
        if name in self.analysis.statement_names and name != own_statement:
            first_span = self.analysis.statement_names[name]
            self.analysis.error(
                "duplicate_name", f"'{name}' is already the name of a statement (line {first_span.line})", span
            )
            return
        symbols[name] = Symbol(name, kind, span, node, order)

    def declare_statement(self, name: str, span: Span, *, own_columns: tuple[str, ...] = ()) -> None:
        if name in self.analysis.statement_names:
            first = self.analysis.statement_names[name]
            self.analysis.error(
                "duplicate_name", f"'{name}' is already the name of a statement (line {first.line})", span
            )
            return
        if name in self.analysis.symbols and name not in own_columns:
            first_symbol = self.analysis.symbols[name]
            where = f" (line {first_symbol.span.line})" if first_symbol.span.line else ""
            self.analysis.error("duplicate_name", f"'{name}' is already declared as {first_symbol.kind}{where}", span)
            return
        self.analysis.statement_names[name] = span

    # --------------------------------------------------------------- statements

    def statement_listdecl(self, statement: ast.ListDecl, index: int) -> None:
        if statement.members is not None:
            self.bind_expr(statement.members, index)
        self.declare(statement.name, LIST, statement.name_span, statement, index)

    def statement_let(self, statement: ast.Let, index: int) -> None:
        self.bind_expr(statement.expr, index, defining=statement.name)
        self.declare(statement.name, LET, statement.name_span, statement, index)

    def statement_rules(self, statement: ast.Rules, index: int) -> None:
        self.declare_statement(statement.name, statement.name_span)
        for rule in statement.rules:
            if rule.id in self.rule_ids:
                self.analysis.error(
                    "duplicate_rule_id",
                    f"rule ID {rule.id} is already used at line {self.rule_ids[rule.id].line}",
                    rule.id_span,
                )
            else:
                self.rule_ids[rule.id] = rule.id_span
            self.bind_expr(rule.condition, index)
            self.bind_actions(rule.actions, index)

    def statement_table(self, statement: ast.Table, index: int) -> None:
        columns = tuple(column.name for column in statement.outputs)
        self.declare_statement(statement.name, statement.name_span, own_columns=columns)
        for expr in statement.inputs:
            self.bind_expr(expr, index)
        for row_number, row in enumerate(statement.rows, start=1):
            if len(row.tests) != len(statement.inputs) or len(row.results) != len(statement.outputs):
                self.analysis.error(
                    "row_shape",
                    f"row {row_number} of table '{statement.name}' has {len(row.tests)} input and "
                    f"{len(row.results)} output cells; the header has {len(statement.inputs)} and "
                    f"{len(statement.outputs)}",
                    row.span,
                )
            for test in row.tests:
                self.bind_expr(test, index)
            for expr in row.results:
                self.bind_expr(expr, index)
        seen: set[str] = set()
        for column in statement.outputs:
            if column.name in seen:
                self.analysis.error(
                    "duplicate_name", f"table '{statement.name}' has two columns named '{column.name}'", column.span
                )
            seen.add(column.name)
        if statement.hit == "collect":
            self.declare(
                statement.name, COLLECT_TABLE, statement.name_span, statement, index, own_statement=statement.name
            )
            if statement.sort_column is not None and statement.sort_column not in columns:
                self.analysis.error(
                    "unknown_sort_column",
                    f"table '{statement.name}' has no output column '{statement.sort_column}' to sort by"
                    + _suggest(statement.sort_column, columns),
                    statement.sort_span,
                )
            if statement.limit is not None and statement.limit < 1:
                self.analysis.error("bad_limit", "a collect table's limit must be at least 1", statement.limit_span)
        else:
            for column in statement.outputs:
                self.declare(column.name, TABLE_COLUMN, column.span, statement, index, own_statement=statement.name)

    def statement_scorecard(self, statement: ast.Scorecard, index: int) -> None:
        for characteristic in statement.characteristics:
            self.bind_expr(characteristic.expr, index)
            for bin_ in characteristic.bins:
                self.bind_expr(bin_.test, index)
        self.declare(statement.name, SCORECARD, statement.name_span, statement, index)
        if statement.name in self.analysis.symbols and self.analysis.symbols[statement.name].node is statement:
            self.analysis.statement_names.setdefault(statement.name, statement.name_span)

    def statement_tree(self, statement: ast.Tree, index: int) -> None:
        self.declare_statement(statement.name, statement.name_span)
        self.bind_branches(statement.branches, index)

    def bind_branches(self, branches, index: int) -> None:
        for position, branch in enumerate(branches):
            if branch.condition is None and position < len(branches) - 1:
                self.analysis.error("otherwise_not_last", "otherwise must be the last branch of its level", branch.span)
            if branch.condition is not None:
                self.bind_expr(branch.condition, index)
            nested = [item for item in branch.body if isinstance(item, ast.Branch)]
            actions = [item for item in branch.body if not isinstance(item, ast.Branch)]
            if nested and actions:
                self.analysis.error(
                    "mixed_branch",
                    "a tree branch holds either further branches or actions, not both",
                    actions[0].span,
                )
            self.bind_branches(nested, index)
            self.bind_actions(actions, index)

    def bind_actions(self, actions, index: int) -> None:
        for action in actions:
            if isinstance(action, ast.Assign):
                self.bind_target(action)
                self.bind_expr(action.expr, index)
            elif isinstance(action, ast.AddReason):
                self.bind_expr(action.expr, index)

    def bind_target(self, action: ast.Assign) -> None:
        symbol = self.analysis.symbols.get(action.target)
        if symbol is None:
            outputs = [s.name for s in self.analysis.outputs]
            self.analysis.error(
                "unknown_output",
                f"'{action.target}' is not an output; only outputs can be assigned" + _suggest(action.target, outputs),
                action.target_span,
            )
        elif symbol.kind == REASONS:
            self.analysis.error(
                "assign_reasons", 'reasons cannot be assigned; add codes with reason "CODE"', action.target_span
            )
        elif symbol.kind != OUTPUT:
            self.analysis.error(
                "assign_non_output",
                f"cannot assign to {symbol.describe()}: only outputs can be assigned",
                action.target_span,
            )
        else:
            symbol.assigned = True

    # -------------------------------------------------------------- expressions

    def bind_expr(self, node, index: int, defining: str | None = None) -> None:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name):
                self.bind_name(sub, index, defining)

    def bind_name(self, node: ast.Name, index: int, defining: str | None) -> None:
        symbol = self.analysis.symbols.get(node.id)
        if symbol is None:
            if node.id == defining:
                self.analysis.error("self_reference", f"'{node.id}' cannot be defined in terms of itself", node.span)
                return
            later = self._declared_later(node.id, index)
            if later is not None:
                self.analysis.error(
                    "use_before_definition",
                    f"'{node.id}' is used before it is defined (it is defined at line {later.line})",
                    node.span,
                )
                return
            candidates = list(self.analysis.symbols)
            self.analysis.error("unknown_name", f"unknown name '{node.id}'" + _suggest(node.id, candidates), node.span)
            return
        if symbol.order >= index >= 0 and symbol.kind not in (INPUT, OUTPUT, REASONS):
            self.analysis.error(
                "use_before_definition",
                f"'{node.id}' is used before it is defined (it is defined at line {symbol.span.line})",
                node.span,
            )
            return
        symbol.used = True
        self.analysis.bindings[id(node)] = symbol

    def _declared_later(self, name: str, index: int) -> Span | None:
        statements = self.analysis.policy.statements
        for statement in statements[max(index, 0) :]:
            if isinstance(statement, (ast.ListDecl, ast.Let, ast.Scorecard)) and statement.name == name:
                return statement.name_span
            if isinstance(statement, ast.Table):
                if statement.hit == "collect" and statement.name == name:
                    return statement.name_span
                for column in statement.outputs:
                    if statement.hit != "collect" and column.name == name:
                        return column.span
        return None


def _suggest(name: str, candidates) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.75)
    return f"; did you mean '{close[0]}'?" if close else ""
