"""Writers racing each other: real OS processes (multiprocessing, "spawn") on one database, SQLite and PostgreSQL.

Each child opens a `Registry` of its own on the test's database URL and waits at a barrier, so that the
processes' calls start together, round after round. What the rules say must come out, whichever process wins:

- two approvers approving the same version: with 1 approval required, one vote is recorded and the other approver
  is told the version is already approved (a conflict); with 2 required, both votes are recorded;
- two deployers activating different approved versions: every activation is in the history, at distinct instants,
  each with exactly one champion, in the order the activations were committed (the audit trail's order), and the
  one committed last is the one live;
- four processes saving drafts: the audit chain verifies, numbered 1..N without a gap, with exactly the events made.

The users are created by the parent (a spawned child inherits no monkeypatch, so no cheap password hashing).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import queue
import traceback
from typing import Any

import pytest
from sqlmodel import select

from registry import Registry, RegistryError, audit, deployments, policies, users
from registry.entities import User
from registry.models import DeploymentRow
from tests.conftest import POLICIES
from tests.registry.conftest import PASSWORD, champions_per_deployment

SOURCE = (POLICIES / "credit_line.policy").read_text()
TESTS = (POLICIES / "credit_line.tests.json").read_text()
SPAWN = multiprocessing.get_context("spawn")
TIMEOUT = 180  # seconds a round may take before the test gives up (a hung child, a lost lock)


def _child(url: str, actor: str, task: str, jobs: list[Any], barrier: Any, every_job: bool, results: Any) -> None:
    """In a child process: open the registry, then run `task` for each job, waiting at `barrier` before every job
    (`every_job`) or once before the first; put (actor, job, "ok" or the error code, message) per job."""
    registry = Registry(url)
    try:
        user = users.get_user(registry, actor)
        if not every_job:
            barrier.wait(TIMEOUT)
        for job in jobs:
            if every_job:
                barrier.wait(TIMEOUT)
            try:
                if task == "approve":
                    policies.approve(registry, user, "credit_line", job)
                elif task == "activate":
                    deployments.activate(registry, user, "credit_line", job)
                elif task == "save":
                    policies.save_draft(registry, user, job, "[]")
                else:
                    raise ValueError(task)
                results.put((actor, job, "ok", ""))
            except RegistryError as exc:
                results.put((actor, job, exc.code, exc.message))
    except BaseException:
        results.put((actor, None, "crash", traceback.format_exc()))
        barrier.abort()  # the others stop waiting for this one
    finally:
        registry.dispose()


def race(registry: Registry, task: str, plan: dict[str, list[Any]], every_job: bool = True) -> list[tuple]:
    """Run `task` in one child process per actor of `plan` (actor → jobs) at once; return every child's results."""
    barrier = SPAWN.Barrier(len(plan))
    results = SPAWN.Queue()
    children = [
        SPAWN.Process(target=_child, args=(registry.url, actor, task, jobs, barrier, every_job, results))
        for actor, jobs in plan.items()
    ]
    for child in children:
        child.start()
    expected = sum(len(jobs) for jobs in plan.values())
    collected: list[tuple] = []
    try:
        while len(collected) < expected:
            item = results.get(timeout=TIMEOUT)
            assert item[2] != "crash", f"{item[0]} crashed:\n{item[3]}"
            collected.append(item)
    except queue.Empty:
        pytest.fail(f"the children gave {len(collected)} of {expected} results in {TIMEOUT} s: {collected}")
    finally:
        for child in children:
            child.join(TIMEOUT)
            if child.is_alive():
                child.kill()
    assert all(child.exitcode == 0 for child in children), [child.exitcode for child in children]
    unavailable = [item for item in collected if item[2] == "unavailable"]
    assert not unavailable, f"the database refused concurrent writers (not serialised): {unavailable}"
    return collected


def event_count(registry: Registry) -> int:
    with registry.read() as session:
        report = audit.verify(session)
        assert report.ok, report.problem
        assert report.events == audit.count(session)
        return report.events


def submit_versions(registry: Registry, author: User, first: int, count: int) -> list[int]:
    """Submit `count` more versions of credit_line (each differing by a comment); return their numbers."""
    numbers = []
    for index in range(first, first + count):
        policies.save_draft(registry, author, SOURCE + f"\n# revision {index}\n", TESTS)
        numbers.append(policies.submit(registry, author, "credit_line").number)
    assert numbers == list(range(first, first + count))
    return numbers


ROUNDS = 8  # approval rounds per setting


def test_two_approvers_at_once_record_only_the_votes_the_rules_allow(
    registry: Registry, people: dict[str, User]
) -> None:
    one_needed = submit_versions(registry, people["author"], 1, ROUNDS)
    policies.set_required_approvals(registry, people["admin"], "credit_line", 2)
    two_needed = submit_versions(registry, people["author"], ROUNDS + 1, ROUNDS)
    before = event_count(registry)
    jobs = one_needed + two_needed
    outcomes = race(registry, "approve", {"approver": jobs, "approver2": jobs})
    by_version: dict[int, dict[str, tuple[str, str]]] = {}
    for actor, number, code, message in outcomes:
        by_version.setdefault(number, {})[actor] = (code, message)
    for number in one_needed:
        codes = sorted(code for code, _ in by_version[number].values())
        assert codes == ["conflict", "ok"], (number, by_version[number])
        winner = next(actor for actor, (code, _) in by_version[number].items() if code == "ok")
        loser_message = next(message for code, message in by_version[number].values() if code == "conflict")
        assert loser_message == f"version {number} of credit_line is already approved (1 of 1 approvals)"
        version = policies.get_version(registry, "credit_line", number)
        assert [(vote.voter, vote.verdict) for vote in version.votes] == [(winner, "approve")]
        assert version.state == "approved"
    for number in two_needed:
        assert by_version[number] == {"approver": ("ok", ""), "approver2": ("ok", "")}, (number, by_version[number])
        version = policies.get_version(registry, "credit_line", number)
        assert sorted(vote.voter for vote in version.votes) == ["approver", "approver2"]
        assert version.state == "approved" and version.required_approvals == 2
    # One version.approved event per recorded vote; a conflict leaves no trace.
    assert event_count(registry) == before + len(one_needed) + 2 * len(two_needed)


DEPLOY_ROUNDS = 20


def test_two_deployers_at_once_make_a_history_in_commit_order(registry: Registry, people: dict[str, User]) -> None:
    deployer2 = users.add_user(registry, people["admin"], "deployer2", PASSWORD, ["deployer"])
    for number in submit_versions(registry, people["author"], 1, 4):
        policies.approve(registry, people["approver"], "credit_line", number)
    before = event_count(registry)
    # Round i: the two deployers activate (1, 2) or (3, 4): neither is ever the live champion when a round starts,
    # and the second to commit differs from the first, so every activation must succeed.
    pairs = [(1, 2) if index % 2 == 0 else (3, 4) for index in range(DEPLOY_ROUNDS)]
    plan = {"deployer": [a for a, _ in pairs], deployer2.name: [b for _, b in pairs]}
    outcomes = race(registry, "activate", plan)
    assert [item for item in outcomes if item[2] != "ok"] == []
    history = deployments.history(registry, "credit_line")
    assert len(history) == 2 * DEPLOY_ROUNDS
    assert len({d.effective_at for d in history}) == 2 * DEPLOY_ROUNDS
    assert sorted((d.created_by, d.champion) for d in history) == sorted(
        (actor, number) for actor, jobs in plan.items() for number in jobs
    )
    assert all(d.challenger is None and d.shadows == () and d.action == "activate" for d in history)
    with registry.read() as session:
        activated = [e for e in audit.events(session, "policy:credit_line") if e.action == "deployment.activated"]
        deployment_ids = session.exec(select(DeploymentRow.id)).all()
        champions = champions_per_deployment(session)
    assert sorted(deployment_ids) == sorted(d.id for d in history)
    assert all(champions.get(i) == 1 for i in deployment_ids), champions
    # The trail's order is the commit order: the history (ordered by effective_at) must follow it exactly.
    assert [e.details["deployment"] for e in activated] == [d.id for d in history]
    last = activated[-1]
    current = deployments.current_deployment(registry, "credit_line")
    assert (current.id, current.champion, current.created_by) == (
        last.details["deployment"],
        last.details["champion"],
        last.actor,
    )
    assert event_count(registry) == before + 2 * DEPLOY_ROUNDS


DRAFTS_EACH = 30


def test_four_writers_at_once_keep_one_unbroken_audit_chain(registry: Registry, people: dict[str, User]) -> None:
    writers = [people["author"].name, people["author2"].name]
    for name in ("author3", "author4"):
        writers.append(users.add_user(registry, people["admin"], name, PASSWORD, ["author"]).name)
    before = event_count(registry)
    # Drafts need only a header: each is the header of policy `contended` and a line naming who saved it.
    plan = {
        writer: [f'policy contended:\n    title: "draft {index} by {writer}"\n' for index in range(DRAFTS_EACH)]
        for writer in writers
    }
    outcomes = race(registry, "save", plan, every_job=False)
    assert [item for item in outcomes if item[2] != "ok"] == []
    total = before + len(writers) * DRAFTS_EACH
    assert event_count(registry) == total
    with registry.read() as session:
        events = audit.events(session)
    assert [event.seq for event in events] == list(range(1, total + 1))
    saved = [event for event in events if event.action == "draft.saved"]
    assert len(saved) == len(writers) * DRAFTS_EACH
    for writer in writers:
        mine = [e for e in saved if e.actor == writer]
        hashes = [hashlib.sha256(job.encode()).hexdigest() for job in plan[writer]]
        assert [e.details["source_hash"] for e in mine] == hashes  # each writer's saves, in its own order
    # Exactly one of the racing first saves created the policy; the draft kept is the one committed last.
    assert [e.details["created_policy"] for e in saved].count(True) == 1
    assert saved[0].details["created_policy"] is True
    draft = policies.get_draft(registry, "contended")
    assert hashlib.sha256(draft.source.encode()).hexdigest() == saved[-1].details["source_hash"]
    assert draft.saved_by == saved[-1].actor
