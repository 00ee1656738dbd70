"""What the database itself refuses, proven with raw SQL through the driver (sqlite3 / psycopg), bypassing every
Python check: each case sets up a real state through the registry, then tries the forbidden statement and
expects the database's refusal with the guard's message."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import psycopg
import pytest
from sqlalchemy.engine import make_url

from registry import Registry, RegistryError, deployments, lists, policies
from registry.entities import User
from tests.conftest import POLICIES

REFUSED = (sqlite3.IntegrityError, psycopg.errors.IntegrityError, psycopg.errors.CheckViolation)


def raw_sql(registry: Registry, statement: str, parameters: tuple = ()) -> None:
    """Run one statement on a plain driver connection of its own, committed."""
    url = make_url(registry.url)
    if registry.dialect == "sqlite":
        connection = sqlite3.connect(url.database)
        connection.execute("PRAGMA foreign_keys = ON")
        try:
            connection.execute(statement.replace("%s", "?"), parameters)
            connection.commit()
        finally:
            connection.close()
    else:
        with psycopg.connect(host=url.host, port=url.port, user=url.username, dbname=url.database) as connection:
            connection.execute(statement, parameters)


def refused(registry: Registry, statement: str, parameters: tuple = ()) -> str:
    with pytest.raises(REFUSED) as caught:
        raw_sql(registry, statement, parameters)
    return str(caught.value)


def submitted_version(registry: Registry, people: dict[str, User], name: str = "credit_line") -> int:
    source = (POLICIES / f"{name}.policy").read_text()
    policies.save_draft(registry, people["author"], source, (POLICIES / f"{name}.tests.json").read_text())
    return policies.submit(registry, people["author"], name).number


def approved_version(registry: Registry, people: dict[str, User], name: str = "credit_line") -> int:
    number = submitted_version(registry, people, name)
    policies.approve(registry, people["approver"], name, number, "ok")
    return number


def scalar(registry: Registry, query: str) -> object:
    from sqlalchemy import text

    with registry.read() as session:
        return session.execute(text(query)).scalar()


APPEND_ONLY_UPDATES: dict[str, str] = {
    "a submitted version": "UPDATE versions SET source = 'policy x:' WHERE number = 1",
    "an approval": "UPDATE votes SET verdict = 'reject'",
    "a deployment": "UPDATE deployments SET note = 'changed'",
    "a deployment's versions": "UPDATE deployment_members SET role = 'shadow'",
    "an audit event": "UPDATE audit_events SET actor = 'mallory' WHERE seq = 1",
    "a list entry": "UPDATE list_entry_events SET value = 'other'",
    "a list change request": "UPDATE list_change_requests SET operation = 'remove'",
    "a list decision": "UPDATE list_change_decisions SET verdict = 'reject'",
    "a list revision": "UPDATE list_revisions SET revision = 7 WHERE revision = 1",
}
APPEND_ONLY_DELETES = {
    "a submitted version": "DELETE FROM versions",
    "an approval": "DELETE FROM votes",
    "a deployment": "DELETE FROM deployments",
    "a deployment's versions": "DELETE FROM deployment_members",
    "an audit event": "DELETE FROM audit_events WHERE seq = (SELECT MAX(seq) FROM audit_events)",
    "a list entry": "DELETE FROM list_entry_events",
    "a list change request": "DELETE FROM list_change_requests",
    "a list decision": "DELETE FROM list_change_decisions",
    "a list revision": "DELETE FROM list_revisions",
}


@pytest.fixture
def full_state(registry: Registry, people: dict[str, User]) -> Registry:
    """One of everything: an approved, active version; an approved list change; audit events."""
    approved_version(registry, people, "consumer_loan")
    deployments.activate(registry, people["deployer"], "consumer_loan", 1)
    request = lists.request_add(registry, people["list_manager"], "blacklist", ["XX1234567"], reason="fraud")
    lists.decide_change(registry, people["list_approver"], request.id, "approve")
    return registry


@pytest.mark.parametrize("what", sorted(APPEND_ONLY_UPDATES))
def test_append_only_records_cannot_be_updated(full_state: Registry, what: str) -> None:
    assert "is permanent: it cannot be changed or deleted" in refused(full_state, APPEND_ONLY_UPDATES[what])


@pytest.mark.parametrize("what", sorted(APPEND_ONLY_DELETES))
def test_append_only_records_cannot_be_deleted(full_state: Registry, what: str) -> None:
    assert "is permanent: it cannot be changed or deleted" in refused(full_state, APPEND_ONLY_DELETES[what])


def test_bulk_rewrites_are_refused(full_state: Registry) -> None:
    """SQLite's INSERT OR REPLACE is a delete plus an insert; PostgreSQL's TRUNCATE fires no row trigger."""
    source_before = scalar(full_state, "SELECT source FROM versions WHERE number = 1")
    if full_state.dialect == "sqlite":
        message = refused(
            full_state,
            "INSERT OR REPLACE INTO versions SELECT id, policy_id, number, 'policy x:', tests_json, content_hash, "
            "compiler_version, author_id, created_at, parent_number, change_note, warnings_json, diff_json, "
            "required_approvals FROM versions WHERE number = 1",
        )
        assert "permanent" in message or "numbered 1, 2, 3" in message
    else:
        assert "cannot be truncated" in refused(full_state, "TRUNCATE audit_events CASCADE")
        assert "cannot be truncated" in refused(full_state, "TRUNCATE versions CASCADE")
    assert scalar(full_state, "SELECT source FROM versions WHERE number = 1") == source_before


def _vote_by(registry: Registry, voter: str, verdict: str = "approve") -> Callable[[], str]:
    return lambda: refused(
        registry,
        "INSERT INTO votes (version_id, voter_id, verdict, comment, created_at) "
        "SELECT v.id, u.id, %s, 'raw', CURRENT_TIMESTAMP FROM versions v, users u WHERE u.name = %s",
        (verdict, voter),
    )


def test_an_author_cannot_approve_their_own_version(registry: Registry, people: dict[str, User]) -> None:
    submitted_version(registry, people)
    assert "the author of a version cannot approve or reject it" in _vote_by(registry, "author")()
    assert scalar(registry, "SELECT COUNT(*) FROM votes") == 0


def test_no_vote_after_a_rejection(registry: Registry, people: dict[str, User]) -> None:
    submitted_version(registry, people)
    policies.reject(registry, people["approver"], "credit_line", 1, "cut-off too low")
    assert "a rejected version takes no more votes" in _vote_by(registry, "approver2")()


def test_version_numbers_have_no_gaps(registry: Registry, people: dict[str, User]) -> None:
    approved_version(registry, people)
    message = refused(
        registry,
        "INSERT INTO versions (policy_id, number, source, tests_json, content_hash, compiler_version, author_id, "
        "created_at, warnings_json, required_approvals) SELECT policy_id, 5, source, tests_json, content_hash, "
        "compiler_version, author_id, created_at, warnings_json, 1 FROM versions WHERE number = 1",
    )
    assert "numbered 1, 2, 3" in message


def _new_deployment(registry: Registry) -> None:
    raw_sql(
        registry,
        "INSERT INTO deployments (policy_id, effective_at, created_at, created_by, action) "
        "SELECT id, '2031-01-01 00:00:00+00:00', CURRENT_TIMESTAMP, 1, 'activate' FROM policies",
    )


def test_a_second_champion_in_one_deployment_is_refused(registry: Registry, people: dict[str, User]) -> None:
    approved_version(registry, people)
    source = (POLICIES / "credit_line.policy").read_text().replace("# ", "#  ", 1)
    policies.save_draft(registry, people["author"], source, (POLICIES / "credit_line.tests.json").read_text())
    policies.submit(registry, people["author"], "credit_line")
    policies.approve(registry, people["approver"], "credit_line", 2)
    deployment = deployments.activate(registry, people["deployer"], "credit_line", 1)
    message = refused(
        registry,
        "INSERT INTO deployment_members (deployment_id, version_id, role) "
        "SELECT %s, id, 'champion' FROM versions WHERE number = 2",
        (deployment.id,),
    )
    assert "UNIQUE" in message.upper() or "duplicate key" in message
    assert deployments.current_deployment(registry, "credit_line").champion == 1


def test_two_deployments_of_a_policy_cannot_take_effect_at_the_same_instant(
    registry: Registry, people: dict[str, User]
) -> None:
    approved_version(registry, people)
    _new_deployment(registry)
    message = refused(
        registry,
        "INSERT INTO deployments (policy_id, effective_at, created_at, created_by, action) "
        "SELECT policy_id, effective_at, created_at, created_by, action FROM deployments",
    )
    assert "a deployment is permanent: it cannot be replaced" in message


def test_only_an_approved_version_can_be_deployed(registry: Registry, people: dict[str, User]) -> None:
    submitted_version(registry, people)  # submitted, not approved
    _new_deployment(registry)
    message = refused(
        registry,
        "INSERT INTO deployment_members (deployment_id, version_id, role) "
        "SELECT d.id, v.id, 'champion' FROM deployments d, versions v",
    )
    assert "only an approved version can be deployed" in message


def test_a_deployment_uses_versions_of_its_own_policy(registry: Registry, people: dict[str, User]) -> None:
    approved_version(registry, people, "credit_line")
    approved_version(registry, people, "early_collections")
    deployments.activate(registry, people["deployer"], "credit_line", 1)
    message = refused(
        registry,
        "INSERT INTO deployment_members (deployment_id, version_id, role) "
        "SELECT d.id, v.id, 'shadow' FROM deployments d, versions v, policies p "
        "WHERE v.policy_id = p.id AND p.name = 'early_collections'",
    )
    assert "versions of its own policy" in message


def test_a_challenger_needs_a_share_between_1_and_99(registry: Registry, people: dict[str, User]) -> None:
    approved_version(registry, people)
    _new_deployment(registry)
    message = refused(
        registry,
        "INSERT INTO deployment_members (deployment_id, version_id, role, percent) "
        "SELECT d.id, v.id, 'challenger', 100 FROM deployments d, versions v",
    )
    assert "challenger_percent" in message


def test_the_requester_of_a_list_change_cannot_decide_it(full_state: Registry) -> None:
    raw_sql(
        full_state,
        "INSERT INTO list_change_requests (list_id, operation, entries_json, requested_by, requested_at) "
        "SELECT id, 'add', '[{\"value\": \"ZZ0000001\"}]', (SELECT id FROM users WHERE name = 'list-manager'), "
        "CURRENT_TIMESTAMP FROM named_lists",
    )
    message = refused(
        full_state,
        "INSERT INTO list_change_decisions (request_id, decided_by, verdict, decided_at) "
        "SELECT MAX(id), (SELECT id FROM users WHERE name = 'list-manager'), 'approve', CURRENT_TIMESTAMP "
        "FROM list_change_requests",
    )
    assert "cannot approve or reject it (maker-checker rule)" in message


def test_an_audit_event_must_extend_the_chain(full_state: Registry) -> None:
    last = scalar(full_state, "SELECT MAX(seq) FROM audit_events")
    last_hash = scalar(full_state, f"SELECT hash FROM audit_events WHERE seq = {last}")
    insert = (
        "INSERT INTO audit_events (seq, at, actor, action, object, details_json, prev_hash, hash) "
        "VALUES (%s, CURRENT_TIMESTAMP, 'mallory', 'x', 'y', '{}', %s, %s)"
    )
    assert "must follow the last one" in refused(full_state, insert, (last + 2, last_hash, "f" * 64))
    assert "must follow the last one" in refused(full_state, insert, (last + 1, "0" * 64, "f" * 64))
    assert "must follow the last one" in refused(full_state, insert, (last, last_hash, "f" * 64))


def test_unknown_roles_kinds_and_verdicts_are_refused(full_state: Registry) -> None:
    assert "known_role" in refused(full_state, "INSERT INTO user_roles (user_id, role) VALUES (1, 'superuser')")
    assert "at_least_one_approval" in refused(full_state, "UPDATE policies SET required_approvals = 0")


def test_a_revoked_key_stays_revoked_and_secrets_never_change(registry: Registry, people: dict[str, User]) -> None:
    from registry import users

    approved_version(registry, people)
    key, _ = users.create_api_key(registry, people["admin"], "los", ["credit_line"])
    assert "secret never changes" in refused(registry, "UPDATE api_keys SET secret_hash = %s", ("0" * 64,))
    users.revoke_api_key(registry, people["admin"], key.id)
    assert "a revoked key stays revoked" in refused(registry, "UPDATE api_keys SET revoked_at = NULL")
    assert users.list_api_keys(registry)[0].revoked_at is not None


def test_a_personal_list_stays_masked_and_keeps_its_type(full_state: Registry) -> None:
    assert "stays masked" in refused(full_state, "UPDATE named_lists SET personal = %s", (False,))
    assert "keeps its name and element type" in refused(full_state, "UPDATE named_lists SET element_type = 'int'")


REPLACEMENTS = {
    "a vote's comment": "INSERT OR REPLACE INTO votes SELECT id, version_id, voter_id, verdict, 'other', created_at "
    "FROM votes",
    "a list entry's value": "INSERT OR REPLACE INTO list_entry_events SELECT id, list_id, revision, operation, "
    "'ZZ0000000', reason, expires_at, requested_by FROM list_entry_events",
    "a deployment's note": "INSERT OR REPLACE INTO deployments SELECT id, policy_id, effective_at, created_at, "
    "created_by, action, 'other' FROM deployments",
    "an audit event": "INSERT OR REPLACE INTO audit_events SELECT seq, at, 'mallory', action, object, details_json, "
    "prev_hash, hash FROM audit_events WHERE seq = 1",
}


@pytest.mark.parametrize("what", sorted(REPLACEMENTS))
def test_replacing_a_permanent_row_is_refused(full_state: Registry, what: str) -> None:
    """SQLite's INSERT OR REPLACE deletes the old row without its DELETE trigger; PostgreSQL has no such statement,
    and the same insert with a reused key is refused there too."""
    statement = REPLACEMENTS[what]
    if full_state.dialect == "postgresql":
        statement = statement.replace("INSERT OR REPLACE", "INSERT")
    message = refused(full_state, statement)
    # Another guard may refuse the copy first (a vote on an approved version, an event off the chain's end).
    assert any(
        words in message
        for words in ("is permanent: it cannot be replaced", "takes no more votes", "must follow the last one")
    )


def test_a_member_naming_a_missing_version_is_refused(registry: Registry, people: dict[str, User]) -> None:
    """A guard whose subquery finds no row must refuse, not let the row through (foreign keys may be off)."""
    approved_version(registry, people)
    _new_deployment(registry)
    message = refused(
        registry,
        "INSERT INTO deployment_members (deployment_id, version_id, role) "
        "SELECT d.id, (SELECT MAX(id) + 1 FROM versions), 'champion' FROM deployments d",
    )
    assert "versions of its own policy" in message or "only an approved version" in message


def test_no_vote_by_anyone_who_saved_the_draft(registry: Registry, people: dict[str, User]) -> None:
    from registry import users

    both = users.add_user(registry, people["admin"], "both", "long password 1", ["author", "approver"])
    policies.save_draft(registry, both, (POLICIES / "credit_line.policy").read_text(), "[]")
    policies.save_draft(
        registry,
        people["author"],
        (POLICIES / "credit_line.policy").read_text(),
        (POLICIES / "credit_line.tests.json").read_text(),
    )
    version = policies.submit(registry, people["author"], "credit_line")
    assert version.contributors == ("author", "both")
    assert "the author of a version cannot approve or reject it" in _vote_by(registry, "both")()
    with pytest.raises(RegistryError) as caught:
        policies.approve(registry, both, "credit_line", 1)
    assert (
        caught.value.message == "both wrote version 1 of credit_line: another approver must review it (four-eyes rule)"
    )


def test_no_vote_after_approval(registry: Registry, people: dict[str, User]) -> None:
    approved_version(registry, people)
    assert "an approved version takes no more votes" in _vote_by(registry, "approver2", "reject")()
