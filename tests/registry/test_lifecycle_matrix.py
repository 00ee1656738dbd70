"""The lifecycle as a table: every operation × every role × every state of a version → allowed, or the exact
refusal (its code and the words of its message). Written from the rules of docs/registry.md, not from the code.

States of version 1 of credit_line: `draft` (saved, never submitted), `submitted`, `approved`, `rejected`,
`active` (approved and champion). The role matrix runs each operation in the state where the right role may do
it, as every role; the state matrix runs each operation as the right role in every state.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from registry import Registry, RegistryError, deployments, lists, policies, users
from registry.entities import User
from tests.conftest import POLICIES

SOURCE = (POLICIES / "credit_line.policy").read_text()
TESTS = (POLICIES / "credit_line.tests.json").read_text()
ROLE_OF_USER = {
    "author": "author",
    "approver": "approver",
    "deployer": "deployer",
    "list_manager": "list_manager",
    "list_approver": "list_approver",
    "auditor": "auditor",
    "admin": "admin",
}


def reach(registry: Registry, people: dict[str, User], state: str) -> None:
    policies.save_draft(registry, people["author"], SOURCE, TESTS)
    if state == "draft":
        return
    policies.submit(registry, people["author"], "credit_line")
    if state == "approved" or state == "active":
        policies.approve(registry, people["approver"], "credit_line", 1, "ok")
    if state == "rejected":
        policies.reject(registry, people["approver"], "credit_line", 1, "no")
    if state == "active":
        deployments.activate(registry, people["deployer"], "credit_line", 1)


Operation = Callable[[Registry, User], object]
OPERATIONS: dict[str, tuple[str, Operation]] = {
    "save draft": ("author", lambda registry, actor: policies.save_draft(registry, actor, SOURCE + "\n", TESTS)),
    "submit": ("author", lambda registry, actor: policies.submit(registry, actor, "credit_line")),
    "approve": ("approver", lambda registry, actor: policies.approve(registry, actor, "credit_line", 1, "fine")),
    "reject": ("approver", lambda registry, actor: policies.reject(registry, actor, "credit_line", 1, "too lax")),
    "activate": ("deployer", lambda registry, actor: deployments.activate(registry, actor, "credit_line", 1)),
    "rollback": ("deployer", lambda registry, actor: deployments.rollback(registry, actor, "credit_line", 1)),
    "set approvals": (
        "admin",
        lambda registry, actor: policies.set_required_approvals(registry, actor, "credit_line", 2),
    ),
    "add user": (
        "admin",
        lambda registry, actor: users.add_user(registry, actor, "newcomer", "long password 1", ["author"]),
    ),
    "create key": ("admin", lambda registry, actor: users.create_api_key(registry, actor, "los", ["credit_line"])),
}
# The state in which the right role succeeds (the role matrix's state).
ALLOWED_IN = {
    "save draft": "draft",
    "submit": "draft",
    "approve": "submitted",
    "reject": "submitted",
    "activate": "approved",
    "rollback": None,  # needs two versions: see test_rollback_goes_to_an_earlier_approved_version
    "set approvals": "draft",
    "add user": "draft",
    "create key": "draft",
}
OPERATION_WORDS = {
    "save draft": "save a draft",
    "submit": "submit a version",
    "approve": "approve or reject a version",
    "reject": "approve or reject a version",
    "activate": "activate a version",
    "rollback": "roll back a policy",
    "set approvals": "change a policy's settings",
    "add user": "manage users",
    "create key": "manage API keys",
}

OK = None
# (operation, state) → None (allowed) or (code, words the message contains), as the right role.
STATE_MATRIX: dict[tuple[str, str], tuple[str, str] | None] = {
    ("save draft", "draft"): OK,
    ("save draft", "submitted"): OK,
    ("save draft", "approved"): OK,
    ("save draft", "rejected"): OK,
    ("save draft", "active"): OK,
    ("submit", "draft"): OK,
    ("submit", "submitted"): ("refused", "the draft is the same as version 1"),
    ("submit", "approved"): ("refused", "the draft is the same as version 1"),
    ("submit", "rejected"): ("refused", "the draft is the same as version 1"),
    ("submit", "active"): ("refused", "the draft is the same as version 1"),
    ("approve", "draft"): ("not_found", "version 1 of policy 'credit_line' does not exist"),
    ("approve", "submitted"): OK,
    ("approve", "approved"): ("conflict", "version 1 of credit_line is already approved (1 of 1 approvals)"),
    ("approve", "rejected"): ("conflict", "version 1 of credit_line was rejected: it takes no more votes"),
    ("approve", "active"): ("conflict", "is already approved"),
    ("reject", "draft"): ("not_found", "version 1 of policy 'credit_line' does not exist"),
    ("reject", "submitted"): OK,
    ("reject", "approved"): ("conflict", "is already approved"),
    ("reject", "rejected"): ("conflict", "was rejected: it takes no more votes"),
    ("reject", "active"): ("conflict", "is already approved"),
    ("activate", "draft"): ("not_found", "version 1 of policy 'credit_line' does not exist"),
    ("activate", "submitted"): ("conflict", "version 1 of credit_line is submitted, not approved"),
    ("activate", "approved"): OK,
    ("activate", "rejected"): ("conflict", "version 1 of credit_line is rejected, not approved"),
    ("activate", "active"): ("conflict", "that is already credit_line's live deployment"),
    ("rollback", "draft"): ("not_found", "version 1 of policy 'credit_line' does not exist"),
    ("rollback", "submitted"): ("conflict", "is submitted, not approved"),
    ("rollback", "approved"): ("conflict", "credit_line has never been activated: there is nothing to roll back"),
    ("rollback", "rejected"): ("conflict", "is rejected, not approved"),
    ("rollback", "active"): ("invalid", "a rollback goes to an earlier version than the champion (version 1)"),
}
STATES = ("draft", "submitted", "approved", "rejected", "active")


def test_the_state_matrix_is_complete() -> None:
    assert set(STATE_MATRIX) == {
        (op, state) for op in ("save draft", "submit", "approve", "reject", "activate", "rollback") for state in STATES
    }


@pytest.mark.parametrize(("operation", "state"), sorted(STATE_MATRIX))
def test_state_matrix(registry: Registry, people: dict[str, User], operation: str, state: str) -> None:
    reach(registry, people, state)
    role, run = OPERATIONS[operation]
    actor = people["approver2"] if role == "approver" else people[role]
    expected = STATE_MATRIX[(operation, state)]
    if expected is None:
        run(registry, actor)
        return
    with pytest.raises(RegistryError) as caught:
        run(registry, actor)
    code, words = expected
    assert caught.value.code == code, caught.value.render()
    assert words in caught.value.render()


@pytest.mark.parametrize("operation", [name for name, state in ALLOWED_IN.items() if state])
def test_role_matrix(registry: Registry, people: dict[str, User], operation: str) -> None:
    """Every role but the right one is refused, naming the missing role; then the right role succeeds."""
    reach(registry, people, ALLOWED_IN[operation])
    needed, run = OPERATIONS[operation]
    for user, role in ROLE_OF_USER.items():
        if role == needed:
            continue
        with pytest.raises(RegistryError) as caught:
            run(registry, people[user])
        assert caught.value.code == "permission_denied", (user, caught.value.render())
        words = OPERATION_WORDS[operation]
        expected = f"{people[user].name} may not {words}: that needs the {needed} role (their roles: {role})"
        assert caught.value.message == expected
    actor = people["approver2"] if needed == "approver" else people[needed]
    run(registry, actor)


def test_an_author_who_is_also_an_approver_cannot_approve_their_own_version(
    registry: Registry, people: dict[str, User]
) -> None:
    both = users.add_user(registry, people["admin"], "both", "long password 1", ["author", "approver"])
    policies.save_draft(registry, both, SOURCE, TESTS)
    policies.submit(registry, both, "credit_line")
    for verdict in ("approve", "reject"):
        with pytest.raises(RegistryError) as caught:
            policies.vote(registry, both, "credit_line", 1, verdict, "mine")
        assert caught.value.code == "permission_denied"
        assert (
            caught.value.message
            == "both wrote version 1 of credit_line: another approver must review it (four-eyes rule)"
        )
    assert policies.approve(registry, people["approver"], "credit_line", 1).state == "approved"


def test_one_vote_per_person_and_the_required_number_of_distinct_approvals(
    registry: Registry, people: dict[str, User]
) -> None:
    policies.save_draft(registry, people["author"], SOURCE, TESTS)
    policies.set_required_approvals(registry, people["admin"], "credit_line", 2)
    policies.submit(registry, people["author"], "credit_line")
    assert policies.approve(registry, people["approver"], "credit_line", 1).state == "submitted"
    with pytest.raises(RegistryError) as caught:
        policies.approve(registry, people["approver"], "credit_line", 1)
    assert (caught.value.code, caught.value.message) == (
        "conflict",
        "approver has already voted on version 1 of credit_line",
    )
    approved = policies.approve(registry, people["approver2"], "credit_line", 1)
    assert (approved.state, approved.approvers) == ("approved", ("approver", "approver2"))
    # A later change of the setting does not change what a submitted version needed.
    policies.set_required_approvals(registry, people["admin"], "credit_line", 3)
    assert policies.get_version(registry, "credit_line", 1).state == "approved"


def test_rollback_goes_to_an_earlier_approved_version(registry: Registry, people: dict[str, User]) -> None:
    reach(registry, people, "active")
    policies.save_draft(registry, people["author"], SOURCE.replace("# ", "## ", 1), TESTS)
    assert policies.submit(registry, people["author"], "credit_line").number == 2
    policies.approve(registry, people["approver"], "credit_line", 2)
    deployments.activate(registry, people["deployer"], "credit_line", 2)
    with pytest.raises(RegistryError) as caught:
        deployments.rollback(registry, people["author"], "credit_line", 1)
    assert caught.value.code == "permission_denied"
    back = deployments.rollback(registry, people["deployer"], "credit_line", 1, "v2 misbehaves")
    assert (back.action, back.champion) == ("rollback", 1)
    assert deployments.current_deployment(registry, "credit_line").champion == 1
    assert [d.champion for d in deployments.history(registry, "credit_line")] == [1, 2, 1]


LIST_MATRIX = {
    # (who decides, state of the request) → None or (code, words)
    ("list_approver", "pending"): OK,
    ("list_approver", "approved"): ("conflict", "list change request 1 was already decided"),
    ("list_approver", "rejected"): ("conflict", "list change request 1 was already decided"),
    ("list_manager", "pending"): ("permission_denied", "that needs the list_approver role"),
    ("approver", "pending"): ("permission_denied", "that needs the list_approver role"),
    ("maker", "pending"): ("permission_denied", "another list approver must decide it (maker-checker)"),
}


@pytest.mark.parametrize(("who", "state"), sorted(LIST_MATRIX))
def test_list_change_matrix(registry: Registry, people: dict[str, User], who: str, state: str) -> None:
    reach(registry, people, "draft")
    consumer = (POLICIES / "consumer_loan.policy").read_text()
    policies.save_draft(registry, people["author"], consumer, (POLICIES / "consumer_loan.tests.json").read_text())
    policies.submit(registry, people["author"], "consumer_loan")  # creates the blacklist at revision 0
    maker = users.add_user(registry, people["admin"], "maker", "long password 1", ["list_manager", "list_approver"])
    request = lists.request_add(registry, maker, "blacklist", ["AB1234567"], reason="fraud")
    if state != "pending":
        lists.decide_change(
            registry, people["list_approver"], request.id, state[:-1] if state == "approved" else "reject"
        )
    actor = maker if who == "maker" else people[who]
    expected = LIST_MATRIX[(who, state)]
    if expected is None:
        assert lists.decide_change(registry, actor, request.id, "approve").revision == 1
        return
    with pytest.raises(RegistryError) as caught:
        lists.decide_change(registry, actor, request.id, "approve")
    assert caught.value.code == expected[0] and expected[1] in caught.value.message
