"""The registry against a model: random sequences of operations by random users, on SQLite and on PostgreSQL.

A hypothesis `RuleBasedStateMachine` saves drafts (variants of the example policies: a changed cut-off, a changed
title, one declaring a new list, one whose test cases fail, one declaring a list with the wrong type, …), submits,
approves and rejects (self-approval included), activates (champion, challenger, shadows), rolls back, changes the
number of required approvals, and requests, approves and rejects list changes (maker-checker included), each as a
user drawn from every role. Beside the registry runs a plain Python model written from the rules of
docs/registry.md; every call's outcome must be what the model predicts — allowed, or refused with the model's
error code (and, where the rules say so, its words) — and after every step:

- versions are numbered 1..N per policy, and each one's source, tests, content hash (the compiler's, computed here
  from the text), author, required approvals, votes and state are what the model recorded; no one voted on their
  own version (also checked on the raw rows);
- the deployment history is the model's, every deployment has exactly one champion (raw rows), every member is an
  approved version, and `current_deployment` is the model's last one;
- the audit chain verifies and holds exactly the events the model counted (one per change, one per refusal for a
  missing role or a self-approval, none for other refusals), so it only grows;
- for every list and every revision R, `members(revision=R, masked=False)` is the model's set at R (value, reason,
  expiry, who asked, the revision that added it), and revision current+1 does not exist.

Every example starts from a fresh copy of one prepared database (the `people`, two users holding two roles each,
and consumer_loan@1 submitted, which creates the `blacklist` list at revision 0).
"""

from __future__ import annotations

import itertools
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from sqlalchemy.engine import make_url
from sqlmodel import col, func, select

from compiler import compile_source
from registry import Registry, RegistryError, audit, deployments, lists, policies, users
from registry.entities import User
from registry.models import DeploymentRow, VersionRow, VoteRow
from tests.conftest import POLICIES
from tests.registry.conftest import PASSWORD, champions_per_deployment

CREDIT = (POLICIES / "credit_line.policy").read_text()
CREDIT_TESTS = (POLICIES / "credit_line.tests.json").read_text()
CONSUMER = (POLICIES / "consumer_loan.policy").read_text()
CONSUMER_TESTS = (POLICIES / "consumer_loan.tests.json").read_text()
BEHAVIOUR = "# ---- Behaviour summary"

# Who holds which role: the conftest's `people` (by user name) plus two users holding two roles each, so that
# four-eyes and maker-checker are tried by someone who has the role.
ROLES_OF: dict[str, frozenset[str]] = {
    "admin": frozenset({"admin"}),
    "author": frozenset({"author"}),
    "author2": frozenset({"author"}),
    "approver": frozenset({"approver"}),
    "approver2": frozenset({"approver"}),
    "deployer": frozenset({"deployer"}),
    "list-manager": frozenset({"list_manager"}),
    "list-approver": frozenset({"list_approver"}),
    "auditor": frozenset({"auditor"}),
    "both": frozenset({"author", "approver"}),
    "maker": frozenset({"list_manager", "list_approver"}),
}
EXTRA_USERS = {"both": ["author", "approver"], "maker": ["list_manager", "list_approver"]}
EVERYONE = sorted(ROLES_OF)


def actors(role: str) -> st.SearchStrategy[str]:
    """Anyone, but mostly someone with `role` (so that most steps get somewhere)."""
    holders = [name for name in EVERYONE if role in ROLES_OF[name]]
    return st.sampled_from(holders * (24 // len(holders)) + EVERYONE)


@dataclass(frozen=True)
class Variant:
    """A draft the machine may save: its text, and what the rules say about it (worked out by hand)."""

    policy: str
    source: str
    tests_json: str
    saves: bool = True  # a policy header and test cases that are JSON
    passes: bool = True  # compiles, has test cases, and every one passes
    lists: tuple[tuple[str, str], ...] = ()  # the named lists it declares, with their element types


VARIANTS: dict[str, Variant] = {
    "credit": Variant("credit_line", CREDIT, CREDIT_TESTS),
    # Moving the first utilisation cut-off from 30% to 25%: no test case has a utilisation in between.
    "credit cut-off": Variant(
        "credit_line",
        CREDIT.replace("< 30% => 30", "< 25% => 30").replace("[30%..70%) => 10", "[25%..70%) => 10"),
        CREDIT_TESTS,
    ),
    "credit title": Variant("credit_line", CREDIT.replace('title: "', 'title: "Revised ', 1), CREDIT_TESTS),
    "credit vip list": Variant(
        "credit_line",
        CREDIT.replace(BEHAVIOUR, "list vip_ids: int\n\n" + BEHAVIOUR, 1),
        CREDIT_TESTS,
        lists=(("vip_ids", "int"),),
    ),
    # The registry's blacklist holds strings: a policy declaring it as a list of int is refused.
    "credit int blacklist": Variant(
        "credit_line",
        CREDIT.replace(BEHAVIOUR, "list blacklist: int\n\n" + BEHAVIOUR, 1),
        CREDIT_TESTS,
        lists=(("blacklist", "int"),),
    ),
    # G01 moved to three cycles behind: the case "G01 two cycles behind now" (PAY_0 = 2) no longer gets decrease.
    "credit failing": Variant(
        "credit_line", CREDIT.replace("when PAY_0 >= 2", "when PAY_0 >= 3"), CREDIT_TESTS, passes=False
    ),
    "credit no tests": Variant("credit_line", CREDIT, "[]", passes=False),
    "credit not compiling": Variant(
        "credit_line", CREDIT.replace("output:", "output:\n    extra: nonsense = 1", 1), CREDIT_TESTS, passes=False
    ),
    "credit bad json": Variant("credit_line", CREDIT, '[{"name": ', saves=False, passes=False),
    "collections": Variant(
        "early_collections",
        (POLICIES / "early_collections.policy").read_text(),
        (POLICIES / "early_collections.tests.json").read_text(),
    ),
    "no header": Variant("credit_line", "input:\n    x: int\n", "[]", saves=False, passes=False),
    "consumer": Variant("consumer_loan", CONSUMER, CONSUMER_TESTS, lists=(("blacklist", "string"),)),
    "consumer title": Variant(
        "consumer_loan",
        CONSUMER.replace('title: "', 'title: "Revised ', 1),
        CONSUMER_TESTS,
        lists=(("blacklist", "string"),),
    ),
    # K04 moved to 200%: the case "K04 utilisation just over 150%" is no longer declined.
    "consumer failing": Variant(
        "consumer_loan",
        CONSUMER.replace("> 150%", "> 200%"),
        CONSUMER_TESTS,
        passes=False,
        lists=(("blacklist", "string"),),
    ),
}
POLICY_NAMES = ("credit_line", "credit_line", "consumer_loan", "consumer_loan", "early_collections", "no_such_policy")
_hashes: dict[str, str] = {}


def content_hash(source: str) -> str:
    """What a version's content hash must be: the compiler's hash of the text (not the registry's say-so)."""
    if source not in _hashes:
        _hashes[source] = compile_source(source, "policy.policy").content_hash
    return _hashes[source]


LIST_VALUES = {
    "blacklist": ["AB123456", "CD234567", "EF345678", "GH456789", ""],  # "" is no string member
    "vip_ids": ["7", "007", "+7", "12", "-3", "x1", "1.5"],  # 007 and +7 are 7; x1 and 1.5 are no int
    "no_such_list": ["1"],
}
EXPIRIES = {None: None, "2999-01-01": datetime(2999, 1, 1, tzinfo=UTC), "2000-01-01": datetime(2000, 1, 1, tzinfo=UTC)}
NOW_FOR_THE_MODEL = datetime(2100, 1, 1, tzinfo=UTC)  # any instant between the two expiries: only their order counts


def canonical(element_type: str, value: str) -> str | None:
    """The stored text of a list value by the rules (docs/registry.md), or None when it is not one."""
    if element_type == "string":
        return value if 1 <= len(value) <= 400 else None
    return str(int(value.strip())) if re.fullmatch(r"[+-]?\d+", value.strip()) else None


@dataclass
class VersionModel:
    number: int
    source: str
    tests_json: str
    content_hash: str
    author: str
    required: int
    votes: dict[str, str] = field(default_factory=dict)
    writers: frozenset[str] = frozenset()  # who saved its draft or submitted it: none may vote on it

    @property
    def state(self) -> str:
        if "reject" in self.votes.values():
            return "rejected"
        return "approved" if sum(v == "approve" for v in self.votes.values()) >= self.required else "submitted"


@dataclass
class PolicyModel:
    draft: Variant
    required: int = 1
    editors: set[str] = field(default_factory=set)  # who saved the draft since the last submit
    versions: list[VersionModel] = field(default_factory=list)
    # (action, champion, challenger, percent, shadows, created_by), in the order they were made
    deployments: list[tuple[str, int, int | None, int | None, frozenset[int], str]] = field(default_factory=list)


@dataclass
class Member:
    reason: str | None
    expires_at: datetime | None
    added_by: str
    added_revision: int

    @property
    def alive(self) -> bool:
        return self.expires_at is None or self.expires_at > NOW_FOR_THE_MODEL


@dataclass
class ListModel:
    element_type: str
    revisions: list[dict[str, Member]]  # revision R → every value ever added and not removed, alive or expired


@dataclass
class RequestModel:
    list: str
    operation: str
    entries: list[tuple[str, str | None, datetime | None]]
    requester: str
    status: str = "pending"


Expected = tuple[str, str] | None  # None: allowed; else (code, words the rendered error contains)


def missing_role(actor: str, role: str) -> Expected:
    return None if role in ROLES_OF[actor] else ("permission_denied", f"that needs the {role} role")


class FreshDatabases:
    """Copies of one prepared registry database: a file copy (SQLite) or CREATE DATABASE … TEMPLATE (PostgreSQL)."""

    def __init__(self, request: pytest.FixtureRequest, template: Registry, directory: Path) -> None:
        self.dialect = template.dialect
        self.directory = directory
        self.template_name = make_url(template.url).database
        self.server = request.getfixturevalue("postgresql_server") if self.dialect == "postgresql" else None
        self.count = 0
        template.dispose()  # SQLite: folds the WAL into the file; PostgreSQL: a template must have no connections

    def new(self) -> tuple[Registry, Callable[[], None]]:
        self.count += 1
        if self.server is None:
            path = self.directory / f"example_{self.count}.db"
            shutil.copyfile(self.template_name, path)
            handle = Registry(f"sqlite:///{path}")

            def drop() -> None:
                handle.dispose()
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)

            return handle, drop
        name = f"{self.template_name}_example_{self.count}"
        janitor = self.server.janitor(name, template_dbname=self.template_name)
        janitor.init()
        handle = Registry(self.server.url(name))

        def drop_database() -> None:
            handle.dispose()
            janitor.drop()

        return handle, drop_database


def machine_class(databases: FreshDatabases, setup_events: int) -> type[RuleBasedStateMachine]:
    class RegistryMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.registry, self._drop = databases.new()
            self.users: dict[str, User] = {name: users.get_user(self.registry, name) for name in EVERYONE}
            self.events = setup_events
            # What the prepared database holds (see `prepare`).
            cut_off = VARIANTS["credit cut-off"].source
            self.policies: dict[str, PolicyModel] = {
                "consumer_loan": PolicyModel(
                    VARIANTS["consumer"],
                    versions=[VersionModel(1, CONSUMER, CONSUMER_TESTS, content_hash(CONSUMER), "author", 1)],
                ),
                "credit_line": PolicyModel(
                    VARIANTS["credit cut-off"],
                    versions=[
                        VersionModel(
                            1, CREDIT, CREDIT_TESTS, content_hash(CREDIT), "author", 1, {"approver": "approve"}
                        ),
                        VersionModel(
                            2, cut_off, CREDIT_TESTS, content_hash(cut_off), "author2", 1, {"both": "approve"}
                        ),
                    ],
                    deployments=[("activate", 1, None, None, frozenset(), "deployer")],
                ),
            }
            self.lists: dict[str, ListModel] = {"blacklist": ListModel("string", [{}])}
            self.requests: dict[int, RequestModel] = {}

        def teardown(self) -> None:
            self._drop()

        # ------------------------------------------------------------------ helpers

        def attempt(self, expected: Expected, call: Callable[[], Any]) -> Any:
            """Run `call`; it must succeed when `expected` is None, else be refused with that code and words."""
            try:
                result = call()
            except RegistryError as exc:
                note(f"refused: {exc.code}: {exc.render()}")
                assert expected is not None, f"refused, but the model allows it: {exc.code}: {exc.render()}"
                assert exc.code == expected[0], f"expected {expected}, got {exc.code}: {exc.render()}"
                assert expected[1] in exc.render(), f"expected {expected}, got {exc.code}: {exc.render()}"
                if exc.code == "permission_denied":
                    self.events += 1  # a missing role or a self-approval is on the trail
                return None
            assert expected is None, f"allowed, but the model expected {expected}"
            note("allowed")
            return result

        def numbers(self, policy: str) -> st.SearchStrategy[int]:
            """A version number of `policy`: mostly one that exists, sometimes the next one (which does not)."""
            model = self.policies.get(policy)
            count = len(model.versions) if model else 0
            existing = list(range(count, 0, -1))  # the newest first: what hypothesis draws most
            return st.sampled_from(existing * 3 + [count + 1]) if existing else st.just(1)

        @staticmethod
        def some(data: st.DataObject) -> int:
            """The least number of values in a request: one, but now and then none (which is refused)."""
            return 0 if data.draw(st.integers(0, 7), label="allow an empty request") == 0 else 1

        def approved(self, policy: str) -> list[int]:
            model = self.policies.get(policy)
            return [v.number for v in model.versions if v.state == "approved"] if model else []

        def pending_versions(self) -> list[tuple[str, int]]:
            return [(name, v.number) for name, m in self.policies.items() for v in m.versions if v.state == "submitted"]

        def deployable(self) -> list[str]:
            """The policies with an approved version that could make a deployment other than the live one."""

            def new_possible(name: str) -> bool:
                approved, live = self.approved(name), self.policies[name].deployments
                return bool(approved) and (not live or len(approved) > 1 or approved != [live[-1][1]])

            return sorted(name for name in self.policies if new_possible(name))

        def rollbackable(self) -> list[str]:
            """The deployed policies with an approved version older than the live champion."""
            return sorted(
                name
                for name, model in self.policies.items()
                if model.deployments and any(n < model.deployments[-1][1] for n in self.approved(name))
            )

        def pending_requests(self) -> list[int]:
            return sorted(i for i, r in self.requests.items() if r.status == "pending")

        # ------------------------------------------------------------------ the operations, against the model

        def do_save_draft(self, actor: str, key: str) -> None:
            variant = VARIANTS[key]
            expected = missing_role(actor, "author") or (None if variant.saves else ("invalid", ""))
            draft = self.attempt(
                expected,
                lambda: policies.save_draft(self.registry, self.users[actor], variant.source, variant.tests_json),
            )
            if expected is None:
                assert (draft.policy, draft.source, draft.saved_by) == (variant.policy, variant.source, actor)
                model = self.policies.setdefault(variant.policy, PolicyModel(variant))
                model.draft = variant
                model.editors.add(actor)
                self.events += 1

        def do_submit(self, actor: str, policy: str) -> None:
            model = self.policies.get(policy)
            expected = missing_role(actor, "author")
            if expected is None and model is None:
                expected = ("not_found", f"policy {policy!r} does not exist")
            if expected is None:
                draft, latest = model.draft, (model.versions[-1] if model.versions else None)
                wrong_type = any(
                    name in self.lists and self.lists[name].element_type != kind for name, kind in draft.lists
                )
                if latest is not None and (latest.source, latest.tests_json) == (draft.source, draft.tests_json):
                    expected = ("refused", f"the draft is the same as version {latest.number}")
                elif not draft.passes or wrong_type:
                    expected = ("refused", "version not submitted")
            version = self.attempt(expected, lambda: policies.submit(self.registry, self.users[actor], policy))
            if expected is not None:
                return
            number = len(model.versions) + 1
            draft = model.draft
            assert (version.number, version.state, version.author) == (number, "submitted", actor)
            assert version.parent == (number - 1 if number > 1 else None)
            assert version.required_approvals == model.required
            model.versions.append(
                VersionModel(
                    number,
                    draft.source,
                    draft.tests_json,
                    content_hash(draft.source),
                    actor,
                    model.required,
                    writers=frozenset(model.editors | {actor}),
                )
            )
            model.editors = set()
            self.events += 1
            for name, kind in draft.lists:
                if name not in self.lists:  # a declared list is created empty, at revision 0
                    self.lists[name] = ListModel(kind, [{}])
                    self.events += 1

        def do_vote(self, actor: str, policy: str, number: int, verdict: str, comment: str) -> None:
            model = self.policies.get(policy)
            # The role is checked before anything about the request.
            expected: Expected = missing_role(actor, "approver")
            if expected is None and verdict == "reject" and not comment.strip():
                expected = ("invalid", "a rejection needs a comment")
            if expected is None and (model is None or number > len(model.versions)):
                expected = ("not_found", "does not exist")
            if expected is None:
                version = model.versions[number - 1]
                if version.author == actor or actor in version.writers:
                    expected = ("permission_denied", "four-eyes rule")
                elif actor in version.votes:
                    expected = ("conflict", f"{actor} has already voted on version {number}")
                elif version.state == "rejected":
                    expected = ("conflict", "was rejected: it takes no more votes")
                elif version.state == "approved":
                    expected = ("conflict", "is already approved")
            result = self.attempt(
                expected, lambda: policies.vote(self.registry, self.users[actor], policy, number, verdict, comment)
            )
            if expected is None:
                version.votes[actor] = verdict
                self.events += 1
                assert result.state == version.state

        def do_set_required_approvals(self, actor: str, policy: str, count: int) -> None:
            expected = missing_role(actor, "admin") or (("invalid", "between 1 and 10") if count == 0 else None)
            if expected is None and policy not in self.policies:
                expected = ("not_found", f"policy {policy!r} does not exist")
            summary = self.attempt(
                expected, lambda: policies.set_required_approvals(self.registry, self.users[actor], policy, count)
            )
            if expected is None:
                assert summary.required_approvals == count
                self.policies[policy].required = count
                self.events += 1

        def do_activate(
            self,
            actor: str,
            policy: str,
            champion: int,
            challenger: int | None = None,
            percent: int | None = None,
            shadows: tuple[int, ...] = (),
        ) -> None:
            unique_shadows = list(dict.fromkeys(shadows))
            expected: Expected = missing_role(actor, "deployer")
            if expected is None:
                if (challenger is None) != (percent is None):
                    expected = ("invalid", "a challenger needs a traffic percentage")
                elif percent is not None and not 1 <= percent <= 99:
                    expected = ("invalid", "must be 1 to 99 percent")
                elif challenger == champion:
                    expected = ("invalid", "cannot be both champion and challenger")
                elif champion in shadows or (challenger is not None and challenger in shadows):
                    expected = ("invalid", "a shadow version must differ")
            model = self.policies.get(policy)
            if expected is None and model is None:
                expected = ("not_found", f"policy {policy!r} does not exist")
            for number in [champion] + ([challenger] if challenger is not None else []) + unique_shadows:
                if expected is None and number > len(model.versions):
                    expected = ("not_found", f"version {number} of policy {policy!r} does not exist")
                elif expected is None and model.versions[number - 1].state != "approved":
                    expected = ("conflict", "not approved")
            wanted = (champion, challenger, percent, frozenset(unique_shadows))
            if expected is None and model.deployments and model.deployments[-1][1:5] == wanted:
                expected = ("conflict", f"that is already {policy}'s live deployment")
            deployment = self.attempt(
                expected,
                lambda: deployments.activate(
                    self.registry, self.users[actor], policy, champion, challenger, percent, shadows
                ),
            )
            if expected is None:
                model.deployments.append(("activate", *wanted, actor))
                self.events += 1
                assert (deployment.champion, deployment.challenger, deployment.challenger_percent) == wanted[:3]

        def do_rollback(self, actor: str, policy: str, number: int) -> None:
            model = self.policies.get(policy)
            expected = missing_role(actor, "deployer")
            if expected is None and model is None:
                expected = ("not_found", f"policy {policy!r} does not exist")
            if expected is None and number > len(model.versions):
                expected = ("not_found", f"version {number} of policy {policy!r} does not exist")
            if expected is None and model.versions[number - 1].state != "approved":
                expected = ("conflict", "not approved")
            if expected is None and not model.deployments:
                expected = ("conflict", "has never been activated")
            if expected is None and number >= model.deployments[-1][1]:
                expected = ("invalid", "a rollback goes to an earlier version than the champion")
            deployment = self.attempt(
                expected, lambda: deployments.rollback(self.registry, self.users[actor], policy, number, "back")
            )
            if expected is None:
                model.deployments.append(("rollback", number, None, None, frozenset(), actor))
                self.events += 1
                assert (deployment.action, deployment.champion, deployment.challenger) == ("rollback", number, None)

        def do_request(
            self,
            actor: str,
            name: str,
            operation: str,
            values: list[str],
            reason: str | None = None,
            expires: str | None = None,
        ) -> None:
            expected: Expected = missing_role(actor, "list_manager") or (
                None if values else ("invalid", "at least one value")
            )
            if expected is None and name not in self.lists:
                expected = ("not_found", f"list {name!r} does not exist")
            if expected is None:
                model = self.lists[name]
                stored = [canonical(model.element_type, value) for value in values]
                if None in stored or len(set(stored)) < len(stored):
                    expected = ("invalid", "")
                elif operation == "remove":
                    current = model.revisions[-1]
                    if any(value not in current or not current[value].alive for value in stored):
                        expected = ("invalid", f"is not a member of list {name}")
            if operation == "add":
                call = lambda: lists.request_add(self.registry, self.users[actor], name, values, reason, expires)  # noqa: E731
            else:
                call = lambda: lists.request_remove(self.registry, self.users[actor], name, values)  # noqa: E731
            request = self.attempt(expected, call)
            if expected is not None:
                return
            entries = [(value, reason, EXPIRIES[expires]) for value in stored]
            assert request.id not in self.requests and all(request.id > known for known in self.requests)
            assert (request.list, request.operation, request.status, request.requested_by) == (
                name,
                operation,
                "pending",
                actor,
            )
            assert len(request.entries) == len(entries)
            self.requests[request.id] = RequestModel(name, operation, entries, actor)
            self.events += 1

        def do_decide(self, actor: str, request_id: int, verdict: str) -> None:
            expected: Expected = missing_role(actor, "list_approver") or (
                ("invalid", "approve or reject") if verdict == "maybe" else None
            )
            request = self.requests.get(request_id)
            if expected is None and request is None:
                expected = ("not_found", f"list change request {request_id} does not exist")
            if expected is None and request.requester == actor:
                expected = ("permission_denied", "maker-checker")
            if expected is None and request.status != "pending":
                expected = ("conflict", f"list change request {request_id} was already decided")
            decided = self.attempt(
                expected, lambda: lists.decide_change(self.registry, self.users[actor], request_id, verdict, "checked")
            )
            if expected is not None:
                return
            self.events += 1
            request.status = "approved" if verdict == "approve" else "rejected"
            assert (decided.status, decided.decided_by) == (request.status, actor)
            if verdict == "reject":
                assert decided.revision is None
                return
            model = self.lists[request.list]
            revision = len(model.revisions)
            members = dict(model.revisions[-1])
            skipped = 0
            for value, reason, expires_at in request.entries:
                if request.operation == "add":
                    members[value] = Member(reason, expires_at, request.requester, revision)
                elif value in members and members[value].alive:
                    del members[value]
                else:
                    skipped += 1  # removed (or expired) since it was requested
            model.revisions.append(members)
            assert (decided.revision, len(decided.skipped)) == (revision, skipped)

        # ------------------------------------------------------------------ rules: anything, by anyone
        # Three rules, each drawing one of a few operations with arguments from everything there is (including
        # versions, lists and requests that do not exist), as anyone (mostly someone with the right role).

        @rule(data=st.data())
        def anything_on_policies(self, data: st.DataObject) -> None:
            operation = data.draw(st.sampled_from(["save", "submit", "vote", "set approvals"]), label="operation")
            policy = data.draw(st.sampled_from(POLICY_NAMES), label="policy")
            if operation == "save":
                self.do_save_draft(
                    data.draw(actors("author"), label="actor"), data.draw(st.sampled_from(sorted(VARIANTS)))
                )
            elif operation == "submit":
                self.do_submit(data.draw(actors("author"), label="actor"), policy)
            elif operation == "vote":
                actor = data.draw(actors("approver"), label="actor")
                number = data.draw(self.numbers(policy), label="version")
                verdict = data.draw(st.sampled_from(["approve", "approve", "reject"]), label="verdict")
                comment = data.draw(st.sampled_from(["looks right", "too lax", "", "   "]), label="comment")
                self.do_vote(actor, policy, number, verdict, comment)
            else:
                actor = data.draw(actors("admin"), label="actor")
                self.do_set_required_approvals(
                    actor, policy, data.draw(st.sampled_from([1, 2, 2, 3, 0]), label="count")
                )

        @rule(data=st.data())
        def anything_on_deployments(self, data: st.DataObject) -> None:
            policy = data.draw(st.sampled_from(POLICY_NAMES), label="policy")
            actor = data.draw(actors("deployer"), label="actor")
            numbers = self.numbers(policy)
            if data.draw(st.booleans(), label="roll back"):
                self.do_rollback(actor, policy, data.draw(numbers, label="version"))
                return
            champion = data.draw(numbers, label="champion")
            challenger = percent = None
            if data.draw(st.booleans(), label="with a challenger"):
                challenger = data.draw(numbers, label="challenger")
                percent = data.draw(st.sampled_from([10, 50, 0, 100, None]), label="percent")
            else:
                percent = data.draw(st.sampled_from([None] * 4 + [10]), label="percent")
            shadows = tuple(data.draw(st.lists(numbers, max_size=2), label="shadows"))
            self.do_activate(actor, policy, champion, challenger, percent, shadows)

        @rule(data=st.data())
        def anything_on_lists(self, data: st.DataObject) -> None:
            if data.draw(st.booleans(), label="decide"):
                actor = data.draw(actors("list_approver"), label="actor")
                known = sorted(self.requests)
                unknown = (max(known) if known else 0) + 1
                request_id = data.draw(st.sampled_from(known * 3 + [unknown]), label="request")
                verdict = data.draw(st.sampled_from(["approve"] * 6 + ["reject"] * 2 + ["maybe"]), label="verdict")
                self.do_decide(actor, request_id, verdict)
                return
            actor = data.draw(actors("list_manager"), label="actor")
            name = data.draw(st.sampled_from(["blacklist", "blacklist", "vip_ids", "no_such_list"]), label="list")
            model = self.lists.get(name)
            members = [value for value, member in model.revisions[-1].items() if member.alive] if model else []
            operation = data.draw(st.sampled_from(["add", "add", "remove"]), label="operation")
            pool = LIST_VALUES[name] + members * 3 if operation == "remove" else LIST_VALUES[name]
            values = data.draw(st.lists(st.sampled_from(pool), min_size=self.some(data), max_size=3), label="values")
            if operation == "add":
                reason = data.draw(st.sampled_from([None, "fraud", "court order"]), label="reason")
                expires = data.draw(st.sampled_from(sorted(EXPIRIES, key=str)), label="expires")
                self.do_request(actor, name, "add", values, reason, expires)
            else:
                self.do_request(actor, name, "remove", values)

        # ------------------------------------------------------------------ rules: what people usually do
        # The same operations with arguments that make sense in the current state (a fresh draft, a pending
        # version, an approved one), so that sequences get far — still by anyone, mostly the right role.

        @rule(actor=actors("author"), data=st.data())
        def write_a_new_version(self, actor: str, data: st.DataObject) -> None:
            def differs(key: str) -> bool:
                model = self.policies.get(VARIANTS[key].policy)
                latest = model.versions[-1] if model and model.versions else None
                return latest is None or latest.source != VARIANTS[key].source

            fresh = [key for key, variant in VARIANTS.items() if variant.saves and differs(key)]
            passing = [key for key in fresh if VARIANTS[key].passes]  # mostly one that will be accepted
            key = data.draw(st.sampled_from(passing * 3 + fresh), label="variant")
            self.do_save_draft(actor, key)
            self.do_submit(data.draw(actors("author"), label="submitter"), VARIANTS[key].policy)

        @precondition(lambda self: self.pending_versions())
        @rule(data=st.data())
        def review(self, data: st.DataObject) -> None:
            policy, number = data.draw(st.sampled_from(self.pending_versions()), label="version")
            version = self.policies[policy].versions[number - 1]
            reviewers = [
                n
                for n in EVERYONE
                if "approver" in ROLES_OF[n]
                and n != version.author
                and n not in version.writers
                and n not in version.votes
            ]
            actor = data.draw(st.sampled_from(reviewers * 6 + EVERYONE), label="actor")  # the author too, now and then
            verdict, comment = data.draw(
                st.sampled_from([("approve", "fine")] * 4 + [("reject", "too lax")]), label="verdict"
            )
            self.do_vote(actor, policy, number, verdict, comment)

        @precondition(lambda self: self.deployable())
        @rule(data=st.data())
        def deploy(self, data: st.DataObject) -> None:
            policy = data.draw(st.sampled_from(self.deployable()), label="policy")
            approved, live = self.approved(policy), self.policies[policy].deployments[-1:]
            actor = data.draw(actors("deployer"), label="actor")
            changes = [n for n in approved if not live or n != live[0][1]]  # mostly a new champion
            champion = data.draw(st.sampled_from(changes * 3 + approved), label="champion")
            others = [n for n in approved if n != champion]
            challenger = percent = None
            shadows: tuple[int, ...] = ()
            if others and data.draw(st.booleans(), label="with a challenger"):
                challenger = data.draw(st.sampled_from(others), label="challenger")
                percent = data.draw(st.integers(1, 99), label="percent")
                rest = [n for n in others if n != challenger]
                if rest and data.draw(st.booleans(), label="with shadows"):
                    shadows = tuple(data.draw(st.lists(st.sampled_from(rest), min_size=1, max_size=2), label="shadows"))
            self.do_activate(actor, policy, champion, challenger, percent, shadows)

        @precondition(lambda self: self.rollbackable())
        @rule(data=st.data())
        def roll_back(self, data: st.DataObject) -> None:
            policy = data.draw(st.sampled_from(self.rollbackable()), label="policy")
            approved, champion = self.approved(policy), self.policies[policy].deployments[-1][1]
            earlier = [n for n in approved if n < champion]  # mostly an earlier version, now and then not
            number = data.draw(st.sampled_from(earlier * 4 + approved), label="version")
            self.do_rollback(data.draw(actors("deployer"), label="actor"), policy, number)

        @rule(
            actor=actors("list_manager"),
            name=st.sampled_from(["blacklist", "vip_ids"]),
            reason=st.sampled_from([None, "fraud", "court order"]),
            expires=st.sampled_from(sorted(EXPIRIES, key=str)),
            data=st.data(),
        )
        def ask_for_a_list_change(
            self, actor: str, name: str, reason: str | None, expires: str | None, data: st.DataObject
        ) -> None:
            model = self.lists.get(name)
            valid = (
                [value for value in LIST_VALUES[name] if canonical(model.element_type, value) is not None]
                if model
                else ["1"]
            )
            members = [value for value, member in model.revisions[-1].items() if member.alive] if model else []
            if members and data.draw(st.booleans(), label="remove"):
                values = data.draw(
                    st.lists(st.sampled_from(members), min_size=1, max_size=2, unique=True), label="values"
                )
                self.do_request(actor, name, "remove", values)
            else:
                values = data.draw(
                    st.lists(st.sampled_from(valid), min_size=1, max_size=2, unique=True), label="values"
                )
                self.do_request(actor, name, "add", values, reason, expires)

        @precondition(lambda self: self.pending_requests())
        @rule(data=st.data())
        def check_a_list_change(self, data: st.DataObject) -> None:
            request_id = data.draw(st.sampled_from(self.pending_requests()), label="request")
            requester = self.requests[request_id].requester
            checkers = [n for n in EVERYONE if "list_approver" in ROLES_OF[n] and n != requester]
            actor = data.draw(st.sampled_from(checkers * 6 + EVERYONE), label="actor")  # the maker too, now and then
            self.do_decide(actor, request_id, data.draw(st.sampled_from(["approve"] * 3 + ["reject"]), label="verdict"))

        # ------------------------------------------------------------------ invariants

        @invariant()
        def the_registry_is_the_model(self) -> None:
            registry = self.registry
            assert sorted(p.name for p in policies.list_policies(registry)) == sorted(self.policies)
            for name, model in self.policies.items():
                versions = policies.list_versions(registry, name)
                assert [v.number for v in versions] == list(range(1, len(model.versions) + 1))
                for version, expected in zip(versions, model.versions):
                    assert version.source == expected.source and version.content_hash == expected.content_hash
                    assert version.tests == orjson.loads(expected.tests_json)
                    assert (version.author, version.required_approvals) == (expected.author, expected.required)
                    assert {(vote.voter, vote.verdict) for vote in version.votes} == set(expected.votes.items())
                    assert len(version.votes) == len(expected.votes)
                    assert version.author not in {vote.voter for vote in version.votes}
                    assert version.state == expected.state
                history = deployments.history(registry, name)
                seen = [
                    (d.action, d.champion, d.challenger, d.challenger_percent, frozenset(d.shadows), d.created_by)
                    for d in history
                ]
                assert seen == model.deployments
                assert all(a.effective_at < b.effective_at for a, b in itertools.pairwise(history))
                for deployment in model.deployments:
                    members = [deployment[1], *([deployment[2]] if deployment[2] else []), *deployment[4]]
                    assert all(model.versions[number - 1].state == "approved" for number in members)
                current = deployments.current_deployment(registry, name)
                if model.deployments:
                    assert current is not None and current.id == history[-1].id
                    got = (current.action, current.champion, current.challenger, current.challenger_percent)
                    assert (*got, frozenset(current.shadows), current.created_by) == model.deployments[-1]
                else:
                    assert current is None
            with registry.read() as session:
                # Raw rows: no vote by the version's author; exactly one champion in every deployment.
                own_votes = session.exec(
                    select(func.count())
                    .select_from(VoteRow)
                    .join(VersionRow, col(VersionRow.id) == col(VoteRow.version_id))
                    .where(col(VoteRow.voter_id) == col(VersionRow.author_id))
                ).one()
                assert own_votes == 0
                deployment_ids = session.exec(select(DeploymentRow.id)).all()
                champions = champions_per_deployment(session)
                assert len(deployment_ids) == sum(len(m.deployments) for m in self.policies.values())
                assert all(champions.get(i) == 1 for i in deployment_ids)
                report = audit.verify(session)
                assert report.ok, report.problem
                assert report.events == self.events == audit.count(session)
            assert {(n.name, n.element_type) for n in lists.list_lists(registry)} == {
                (name, model.element_type) for name, model in self.lists.items()
            }
            for name, model in self.lists.items():
                for revision, expected in enumerate(model.revisions):
                    info, entries = lists.members(registry, name, revision=revision, masked=False)
                    assert info.revision == len(model.revisions) - 1
                    got = {(e.value, e.reason, e.expires_at, e.added_by, e.added_revision) for e in entries}
                    want = {
                        (value, m.reason, m.expires_at, m.added_by, m.added_revision)
                        for value, m in expected.items()
                        if m.alive
                    }
                    assert got == want, (name, revision)
                    assert len(entries) == len(want)
                with pytest.raises(RegistryError) as caught:
                    lists.members(registry, name, revision=len(model.revisions))
                assert caught.value.code == "not_found"

    return RegistryMachine


def prepare(registry: Registry, people: dict[str, User]) -> int:
    """What every example starts from; returns the number of audit events it made (known from the rules)."""
    for name, roles in EXTRA_USERS.items():
        users.add_user(registry, people["admin"], name, PASSWORD, roles)
    everyone = {user.name: set(user.roles) for user in users.list_users(registry)}
    assert everyone == {name: set(roles) for name, roles in ROLES_OF.items()}
    policies.save_draft(registry, people["author"], CONSUMER, CONSUMER_TESTS)
    policies.submit(registry, people["author"], "consumer_loan")  # creates the blacklist, at revision 0
    policies.save_draft(registry, people["author"], CREDIT, CREDIT_TESTS)
    policies.submit(registry, people["author"], "credit_line")
    policies.approve(registry, people["approver"], "credit_line", 1)
    policies.save_draft(registry, people["author2"], VARIANTS["credit cut-off"].source, CREDIT_TESTS)
    policies.submit(registry, people["author2"], "credit_line")
    policies.approve(registry, users.get_user(registry, "both"), "credit_line", 2)
    deployments.activate(registry, people["deployer"], "credit_line", 1)
    # One event per user added; draft.saved, list.created and version.submitted for consumer_loan@1; draft.saved,
    # version.submitted and version.approved for each of credit_line@1 and @2; deployment.activated.
    return len(ROLES_OF) + 3 + 3 + 3 + 1


def test_random_operations_match_the_model(
    registry: Registry, people: dict[str, User], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    setup_events = prepare(registry, people)
    databases = FreshDatabases(request, registry, tmp_path)
    run_state_machine_as_test(
        machine_class(databases, setup_events),
        settings=settings(
            max_examples=12,
            stateful_step_count=25,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
        ),
    )
