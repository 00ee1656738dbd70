"""The audit trail: every change appends a linked event, and a row edited behind the registry's back is found by
`audit verify` at exactly that row (after the attacker has dropped the append-only trigger, as a DBA could)."""

from __future__ import annotations

import hashlib
import itertools

import orjson
import pytest
from sqlalchemy import text

from decide_cli.main import main
from registry import Registry, RegistryError, audit, deployments, lists, policies, users
from registry.entities import User
from tests.conftest import POLICIES
from tests.registry.test_database_guards import raw_sql


def walk_through(registry: Registry, people: dict[str, User]) -> None:
    source = (POLICIES / "consumer_loan.policy").read_text()
    policies.save_draft(registry, people["author"], source, (POLICIES / "consumer_loan.tests.json").read_text())
    policies.submit(registry, people["author"], "consumer_loan", "first version")
    policies.approve(registry, people["approver"], "consumer_loan", 1, "checked")
    deployments.activate(registry, people["deployer"], "consumer_loan", 1)
    request = lists.request_add(registry, people["list_manager"], "blacklist", ["XX1234567"], reason="fraud")
    lists.decide_change(registry, people["list_approver"], request.id, "approve")


def test_every_change_appends_one_linked_event(registry: Registry, people: dict[str, User]) -> None:
    walk_through(registry, people)
    with pytest.raises(RegistryError):
        policies.approve(registry, people["deployer"], "consumer_loan", 1)  # a refusal is recorded too
    with registry.read() as session:
        found = audit.events(session)
        report = audit.verify(session)
    actions = [event.action for event in found]
    # 1 admin + 8 role users, then the walk through, then the refused approval.
    assert actions == ["user.added"] * 9 + [
        "draft.saved",
        "list.created",
        "version.submitted",
        "version.approved",
        "deployment.activated",
        "list.change_requested",
        "list.change_approved",
        "permission.denied",
    ]
    assert [event.seq for event in found] == list(range(1, len(found) + 1))
    assert report.ok and report.events == len(found)
    # The hash is SHA-256 over the documented canonical encoding, recomputed here independently.
    first = found[0]
    canonical = orjson.dumps(
        {
            "seq": 1,
            "at": first.at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "actor": "admin",
            "action": "user.added",
            "object": "user:admin",
            "details": {"roles": ["admin"]},
            "prev_hash": "0" * 64,
        },
        option=orjson.OPT_SORT_KEYS,
    )
    assert first.hash == hashlib.sha256(canonical).hexdigest()
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(found))
    denied = found[-1]
    assert (denied.actor, denied.object, denied.details["missing_role"]) == (
        "deployer",
        "policy:consumer_loan@1",
        "approver",
    )


def test_personal_list_values_are_masked_in_the_trail(registry: Registry, people: dict[str, User]) -> None:
    walk_through(registry, people)
    with registry.read() as session:
        trail = orjson.dumps([event.to_json() for event in audit.events(session)]).decode()
    assert "XX1234567" not in trail and "*****4567" in trail


def _tamper(registry: Registry, statement: str) -> None:
    """Drop the append-only guard (as someone with the database's owner rights could), then edit."""
    if registry.dialect == "sqlite":
        raw_sql(registry, "DROP TRIGGER audit_events_no_update")
    else:
        raw_sql(registry, "DROP TRIGGER audit_events_no_update ON audit_events")
    raw_sql(registry, statement)


@pytest.mark.parametrize(
    ("statement", "problem"),
    [
        (
            "UPDATE audit_events SET actor = 'mallory' WHERE seq = 11",
            "event 11 (version.submitted on policy:credit_line@1 by mallory) was changed",
        ),
        ('UPDATE audit_events SET details_json = \'{"note": "other"}\' WHERE seq = 11', "event 11 (version.submitted"),
        ("UPDATE audit_events SET prev_hash = hash WHERE seq = 12", "event 12 does not link to event 11"),
    ],
)
def test_verify_finds_the_edited_row(registry: Registry, people: dict[str, User], statement: str, problem: str) -> None:
    source = (POLICIES / "credit_line.policy").read_text()
    policies.save_draft(registry, people["author"], source, (POLICIES / "credit_line.tests.json").read_text())
    policies.submit(registry, people["author"], "credit_line")  # event 11: 9 users, then the draft
    policies.approve(registry, people["approver"], "credit_line", 1)
    with registry.read() as session:
        assert session.execute(text("SELECT action FROM audit_events WHERE seq = 11")).scalar() == "version.submitted"
        assert audit.verify(session).ok
    _tamper(registry, statement)
    with registry.read() as session:
        report = audit.verify(session)
    expected_at = 12 if "prev_hash" in statement else 11
    assert not report.ok and report.broken_at == expected_at and report.events == expected_at - 1
    assert problem in report.problem
    assert main(["audit", "verify", "--db", registry.url]) == 7


def test_a_deleted_event_is_reported_as_missing(registry: Registry, people: dict[str, User]) -> None:
    users.add_user(registry, people["admin"], "extra", "long enough password", ["auditor"])
    if registry.dialect == "sqlite":
        raw_sql(registry, "DROP TRIGGER audit_events_no_delete")
    else:
        raw_sql(registry, "DROP TRIGGER audit_events_no_delete ON audit_events")
    raw_sql(registry, "DELETE FROM audit_events WHERE seq = 4")
    with registry.read() as session:
        report = audit.verify(session)
    assert (report.broken_at, report.problem) == (4, "event 4 is missing (the next stored is 5)")
