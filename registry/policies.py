"""Policies, drafts, versions and votes: from a working copy to an approved, immutable version.

Input: a `Registry`, the acting user, and the policy text / version / vote. Output: `Draft`, `Version` and
`PolicySummary` entities; every change is one serialised transaction that also appends its audit event.

The rules, in the order `submit` applies them: the draft must compile (every error listed with its line), must
have test cases, and every case must pass; it must differ from the latest version; the named lists it declares
must exist with the same element type or are created empty at revision 0. A version's state is derived from its
votes and never stored: *rejected* once anyone rejects it, *approved* with `required_approvals` distinct
approvals (the number fixed when it was submitted), else *submitted*. The database refuses what these
functions refuse too: a vote by the version's author, a vote after a rejection, any change to a version or vote.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

import orjson
from sqlmodel import Session, col, func, select

from compiler import COMPILER_VERSION, compile_source
from compiler.plugins import FunctionSpec, installed_functions
from compiler.policy import analyse_source
from compiler.testcases import TestFileError, run_cases, validate_cases
from dsl import ast
from dsl.errors import PolicyError
from registry import audit
from registry.access import authorize, require
from registry.database import Registry
from registry.entities import Draft, PolicySummary, User, Version, Vote
from registry.errors import RegistryError, not_found
from registry.lists import ensure_declared_list
from registry.models import POLICY_KINDS, DraftRow, PolicyRow, UserRow, VersionContributorRow, VersionRow, VoteRow

HEADER = re.compile(r"^\s*policy\s+([A-Za-z_][A-Za-z0-9_]*)\s*:", re.M)
MAX_SOURCE_BYTES = 1_000_000


def find_policy_row(session: Session, name: str) -> PolicyRow:
    row = session.exec(select(PolicyRow).where(PolicyRow.name == name)).first()
    if row is None:
        raise not_found(f"policy {name!r}")
    return row


def _user_name(session: Session, user_id: int) -> str:
    user = session.get(UserRow, user_id)
    return user.name if user else "?"


def _diagnostic_line(diagnostic: Any) -> str:
    span = diagnostic.span
    return f"line {span.line}, column {span.column}: {diagnostic.severity}: {diagnostic.message} [{diagnostic.code}]"


# ----------------------------------------------------------------------------- drafts


def save_draft(registry: Registry, actor: User, source: str, tests_json: str) -> Draft:
    """Save the working copy of the policy named in `source`'s header (creating the policy on its first draft).

    A draft may have check errors (it is work in progress); it must name its policy and its test cases must be
    JSON."""
    match = HEADER.search(source)
    authorize(registry, actor, "save a draft", f"policy:{match.group(1) if match else '?'}")
    if len(source.encode("utf-8", "surrogatepass")) > MAX_SOURCE_BYTES:
        raise RegistryError("invalid", f"the policy text is larger than {MAX_SOURCE_BYTES} bytes")
    tree = analyse_source(source, "draft.policy")[0]
    name = tree.name if tree is not None else (match.group(1) if match else None)
    if name is None:
        raise RegistryError("invalid", "the policy text has no `policy NAME:` header, so it cannot be saved")
    if len(name) > 100:
        raise RegistryError("invalid", "the policy name is longer than 100 characters")
    try:
        orjson.loads(tests_json)
    except orjson.JSONDecodeError as exc:
        raise RegistryError("invalid", f"the test cases are not valid JSON: {exc}") from None
    with registry.write() as session:
        user_id = require(session, actor, "save a draft", f"policy:{name}")
        policy = session.exec(select(PolicyRow).where(PolicyRow.name == name)).first()
        created = policy is None
        if policy is None:
            header = tree.header if tree is not None else None
            policy = PolicyRow(
                name=name,
                # An unknown kind is a check error the submit will list; the draft is kept as generic till then.
                kind=header.kind if header and header.kind in POLICY_KINDS else "generic",
                title=(header.title or "")[:200] or None if header else None,
                owner=(header.owner or "")[:200] or None if header else None,
                created_by=user_id,
                created_at=audit.now(),
            )
            session.add(policy)
            session.flush()
        draft = session.get(DraftRow, policy.id) or DraftRow(
            policy_id=policy.id, source="", tests_json="[]", contributors_json="[]"
        )
        draft.source, draft.tests_json, draft.saved_by, draft.saved_at = source, tests_json, user_id, audit.now()
        draft.contributors_json = orjson.dumps(sorted({*orjson.loads(draft.contributors_json), user_id})).decode()
        session.add(draft)
        session.flush()
        audit.append(
            session,
            actor.name,
            "draft.saved",
            f"policy:{name}",
            {"created_policy": created, "source_bytes": len(source.encode()), "source_hash": _text_hash(source)},
        )
        return Draft(name, draft.source, draft.tests_json, actor.name, draft.saved_at)


def _text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def get_draft(registry: Registry, policy: str) -> Draft:
    with registry.read() as session:
        row = session.get(DraftRow, find_policy_row(session, policy).id)
        if row is None:
            raise not_found(f"a draft of policy {policy!r}")
        return Draft(policy, row.source, row.tests_json, _user_name(session, row.saved_by), row.saved_at)


# ----------------------------------------------------------------------------- submit


def _personal_lists(tree: ast.Policy) -> set[str]:
    """The named lists whose members may be personal data: every list of a policy that has a `pii` input (a pii
    value can reach a list through lets and expressions, so any narrower rule could leave one unmasked)."""
    if not any(field.pii for field in tree.inputs):
        return set()
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.ListDecl)}


def submit(
    registry: Registry,
    actor: User,
    policy: str,
    note: str | None = None,
    functions: Mapping[str, FunctionSpec] | None = None,
) -> Version:
    """Turn the policy's draft into its next version, or refuse with every reason (code "refused").

    The draft is compiled with `functions` (default: the installed plugins' functions), so a policy may call
    plugin functions; its content hash then records their signatures."""
    if functions is None:
        functions = installed_functions()
    with registry.write() as session:
        user_id = require(session, actor, "submit a version", f"policy:{policy}")
        policy_row = find_policy_row(session, policy)
        draft = session.get(DraftRow, policy_row.id)
        if draft is None:
            raise RegistryError("not_found", f"policy {policy!r} has no draft to submit: save one first")
        reasons: list[str] = []
        compiled = None
        try:
            compiled = compile_source(draft.source, f"{policy}.policy", functions=functions)
        except PolicyError as exc:
            reasons.extend(_diagnostic_line(d) for d in exc.errors)
        cases: list[dict[str, Any]] = []
        try:
            cases = validate_cases(orjson.loads(draft.tests_json), "test cases")
        except TestFileError as exc:
            reasons.extend(str(exc).splitlines())
        except orjson.JSONDecodeError as exc:
            reasons.append(f"the test cases are not valid JSON: {exc}")
        else:
            if not cases:
                reasons.append("the draft has no test cases: every version needs at least one")
        if compiled is not None and cases:
            for outcome in run_cases(compiled, cases):
                reasons.extend(f'test case "{outcome.name}" fails: {failure}' for failure in outcome.failures)
        latest = session.exec(
            select(VersionRow).where(VersionRow.policy_id == policy_row.id).order_by(col(VersionRow.number).desc())
        ).first()
        if latest is not None and latest.source == draft.source and orjson.loads(latest.tests_json) == cases:
            reasons.append(f"the draft is the same as version {latest.number}: there is nothing to submit")
        if compiled is not None and compiled.name != policy:
            reasons.append(f"the draft's header names policy {compiled.name!r}, not {policy!r}")
        if compiled is not None:
            for list_name, element_type in compiled.info.store_lists.items():
                problem = ensure_declared_list(
                    session, list_name, element_type, personal=list_name in _personal_lists(compiled.ast)
                )
                if problem:
                    reasons.append(problem)
        if reasons:
            raise RegistryError("refused", f"version not submitted: {len(reasons)} problem(s) in the draft", reasons)
        assert compiled is not None
        diff_json = None
        if latest is not None:
            from compiler.diff import semantic_diff

            diff_json = orjson.dumps(
                semantic_diff(latest.source, draft.source, f"{policy}@{latest.number}", f"{policy}@draft").to_json()
            ).decode()
        header = compiled.ast.header
        policy_row.kind = compiled.kind
        policy_row.title, policy_row.owner = (header.title or "")[:200] or None, (header.owner or "")[:200] or None
        session.add(policy_row)
        row = VersionRow(
            policy_id=policy_row.id,
            number=(latest.number + 1) if latest else 1,
            source=draft.source,
            tests_json=orjson.dumps(cases).decode(),
            content_hash=compiled.content_hash,
            compiler_version=COMPILER_VERSION,
            author_id=user_id,
            created_at=audit.now(),
            parent_number=latest.number if latest else None,
            change_note=note,
            warnings_json=orjson.dumps([w.to_json() for w in compiled.warnings]).decode(),
            diff_json=diff_json,
            required_approvals=policy_row.required_approvals,
        )
        session.add(row)
        session.flush()
        contributors = sorted({*orjson.loads(draft.contributors_json), user_id})
        for contributor in contributors:
            session.add(VersionContributorRow(version_id=row.id, user_id=contributor))
        # The next version's writers are those who save the draft from now on.
        draft.contributors_json = "[]"
        session.add(draft)
        session.flush()
        audit.append(
            session,
            actor.name,
            "version.submitted",
            f"policy:{policy}@{row.number}",
            {
                "content_hash": row.content_hash,
                "parent": row.parent_number,
                "note": note,
                "contributors": [_user_name(session, contributor) for contributor in contributors],
            },
        )
        return version_entity(session, policy_row, row)


# ----------------------------------------------------------------------------- votes


def find_version_row(session: Session, policy_row: PolicyRow, number: int) -> VersionRow:
    row = session.exec(
        select(VersionRow).where(VersionRow.policy_id == policy_row.id, VersionRow.number == number)
    ).first()
    if row is None:
        raise not_found(f"version {number} of policy {policy_row.name!r}")
    return row


def _votes(session: Session, version_id: int) -> tuple[Vote, ...]:
    rows = session.exec(select(VoteRow).where(VoteRow.version_id == version_id).order_by(col(VoteRow.id))).all()
    return tuple(Vote(_user_name(session, row.voter_id), row.verdict, row.comment, row.created_at) for row in rows)


def version_state(required: int, votes: tuple[Vote, ...]) -> str:
    """submitted, approved or rejected, from the votes (see the module docstring)."""
    if any(vote.verdict == "reject" for vote in votes):
        return "rejected"
    if sum(vote.verdict == "approve" for vote in votes) >= required:
        return "approved"
    return "submitted"


def version_entity(session: Session, policy_row: PolicyRow, row: VersionRow) -> Version:
    assert row.id is not None
    votes = _votes(session, row.id)
    return Version(
        policy=policy_row.name,
        number=row.number,
        state=version_state(row.required_approvals, votes),
        author=_user_name(session, row.author_id),
        created_at=row.created_at,
        source=row.source,
        tests=orjson.loads(row.tests_json),
        content_hash=row.content_hash,
        compiler_version=row.compiler_version,
        parent=row.parent_number,
        change_note=row.change_note,
        warnings=orjson.loads(row.warnings_json),
        diff=orjson.loads(row.diff_json) if row.diff_json else None,
        required_approvals=row.required_approvals,
        votes=votes,
        contributors=tuple(
            sorted(
                _user_name(session, contributor.user_id)
                for contributor in session.exec(
                    select(VersionContributorRow).where(VersionContributorRow.version_id == row.id)
                ).all()
            )
        ),
    )


def vote(registry: Registry, actor: User, policy: str, number: int, verdict: str, comment: str | None) -> Version:
    """Record `actor`'s approval or rejection of a version; return the version with its new state."""
    ref = f"policy:{policy}@{number}"
    authorize(registry, actor, "approve or reject a version", ref)
    if verdict not in ("approve", "reject"):
        raise RegistryError("invalid", f"a vote is approve or reject, not {verdict!r}")
    if verdict == "reject" and not (comment or "").strip():
        raise RegistryError("invalid", "a rejection needs a comment saying why")
    with registry.write() as session:
        user_id = require(session, actor, "approve or reject a version", ref)
        policy_row = find_policy_row(session, policy)
        row = find_version_row(session, policy_row, number)
        current = version_entity(session, policy_row, row)
        wrote = session.get(VersionContributorRow, (row.id, user_id)) is not None
        if row.author_id == user_id or wrote:
            raise RegistryError(
                "permission_denied",
                f"{actor.name} wrote version {number} of {policy}: another approver must review it (four-eyes rule)",
                audit_event=(actor.name, "permission.denied", ref, {"operation": "vote on own version"}),
            )
        if any(existing.voter == actor.name for existing in current.votes):
            raise RegistryError("conflict", f"{actor.name} has already voted on version {number} of {policy}")
        if current.state == "rejected":
            raise RegistryError(
                "conflict", f"version {number} of {policy} was rejected: it takes no more votes (submit a new draft)"
            )
        if current.state == "approved":
            raise RegistryError(
                "conflict",
                f"version {number} of {policy} is already approved ({len(current.approvers)} of "
                f"{row.required_approvals} approvals)",
            )
        session.add(
            VoteRow(version_id=row.id, voter_id=user_id, verdict=verdict, comment=comment, created_at=audit.now())
        )
        session.flush()
        updated = version_entity(session, policy_row, row)
        audit.append(
            session,
            actor.name,
            "version.approved" if verdict == "approve" else "version.rejected",
            ref,
            {"comment": comment, "state": updated.state},
        )
        return updated


def approve(registry: Registry, actor: User, policy: str, number: int, comment: str | None = None) -> Version:
    return vote(registry, actor, policy, number, "approve", comment)


def reject(registry: Registry, actor: User, policy: str, number: int, comment: str) -> Version:
    return vote(registry, actor, policy, number, "reject", comment)


# ----------------------------------------------------------------------------- reading and settings


def get_version(registry: Registry, policy: str, number: int | None = None) -> Version:
    """A version (the latest when `number` is None)."""
    with registry.read() as session:
        policy_row = find_policy_row(session, policy)
        if number is None:
            row = session.exec(
                select(VersionRow).where(VersionRow.policy_id == policy_row.id).order_by(col(VersionRow.number).desc())
            ).first()
            if row is None:
                raise not_found(f"a submitted version of policy {policy!r}")
        else:
            row = find_version_row(session, policy_row, number)
        return version_entity(session, policy_row, row)


def list_versions(registry: Registry, policy: str) -> list[Version]:
    with registry.read() as session:
        policy_row = find_policy_row(session, policy)
        rows = session.exec(
            select(VersionRow).where(VersionRow.policy_id == policy_row.id).order_by(col(VersionRow.number))
        ).all()
        return [version_entity(session, policy_row, row) for row in rows]


def list_policies(registry: Registry) -> list[PolicySummary]:
    with registry.read() as session:
        summaries = []
        for row in session.exec(select(PolicyRow).order_by(col(PolicyRow.name))).all():
            latest = session.exec(select(func.max(VersionRow.number)).where(VersionRow.policy_id == row.id)).one()
            summaries.append(
                PolicySummary(
                    row.name,
                    row.kind,
                    row.title,
                    row.owner,
                    row.required_approvals,
                    latest,
                    session.get(DraftRow, row.id) is not None,
                )
            )
        return summaries


def set_required_approvals(registry: Registry, actor: User, policy: str, count: int) -> PolicySummary:
    """How many distinct approvals the policy's next versions need (versions already submitted keep theirs)."""
    authorize(registry, actor, "change a policy's settings", f"policy:{policy}")
    if not 1 <= count <= 10:
        raise RegistryError("invalid", "the number of required approvals must be between 1 and 10")
    with registry.write() as session:
        require(session, actor, "change a policy's settings", f"policy:{policy}")
        row = find_policy_row(session, policy)
        before, row.required_approvals = row.required_approvals, count
        session.add(row)
        session.flush()
        audit.append(
            session, actor.name, "policy.approvals_required", f"policy:{policy}", {"before": before, "after": count}
        )
    return next(summary for summary in list_policies(registry) if summary.name == policy)
