"""Deployments over time: champion, challenger and shadows; scheduled activations; rollback; and "what was live
at instant t" for every instant of a worked history (the answers follow from the effective times alone)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from registry import Registry, RegistryError, audit, deployments, policies
from registry.entities import User
from tests.conftest import POLICIES

SOURCE = (POLICIES / "credit_line.policy").read_text()
TESTS = (POLICIES / "credit_line.tests.json").read_text()


def approved_versions(registry: Registry, people: dict[str, User], count: int) -> None:
    for number in range(1, count + 1):
        policies.save_draft(registry, people["author"], SOURCE + "\n" * number, TESTS)
        assert policies.submit(registry, people["author"], "credit_line").number == number
        policies.approve(registry, people["approver"], "credit_line", number)


def test_champion_challenger_and_shadows(registry: Registry, people: dict[str, User]) -> None:
    approved_versions(registry, people, 4)
    live = deployments.activate(
        registry, people["deployer"], "credit_line", 2, challenger=3, percent=10, shadows=[1, 4]
    )
    assert (live.champion, live.challenger, live.challenger_percent, live.shadows) == (2, 3, 10, (1, 4))
    assert deployments.current_deployment(registry, "credit_line") == live
    cases = [
        ({"challenger": 3}, "invalid", "a challenger needs a traffic percentage"),
        ({"challenger": 3, "percent": 100}, "invalid", "the challenger's share must be 1 to 99 percent, not 100"),
        ({"challenger": 2, "percent": 5}, "invalid", "version 2 cannot be both champion and challenger"),
        ({"shadows": [2]}, "invalid", "a shadow version must differ from the champion and the challenger"),
        (
            {"challenger": 3, "percent": 10, "shadows": [1, 4]},
            "conflict",
            "that is already credit_line's live deployment",
        ),
    ]
    for options, code, words in cases:
        with pytest.raises(RegistryError) as caught:
            deployments.activate(registry, people["deployer"], "credit_line", 2, **options)
        assert (caught.value.code, caught.value.message.startswith(words)) == (code, True), caught.value.message


def test_an_unapproved_challenger_or_shadow_is_refused(registry: Registry, people: dict[str, User]) -> None:
    approved_versions(registry, people, 1)
    policies.save_draft(registry, people["author"], SOURCE + "\n\n\n", TESTS)
    policies.submit(registry, people["author"], "credit_line")
    for options in ({"challenger": 2, "percent": 5}, {"shadows": [2]}):
        with pytest.raises(RegistryError) as caught:
            deployments.activate(registry, people["deployer"], "credit_line", 1, **options)
        assert caught.value.message.startswith("version 2 of credit_line is submitted, not approved: it cannot be the ")
    assert deployments.current_deployment(registry, "credit_line") is None


def test_what_was_live_at_every_instant(registry: Registry, people: dict[str, User]) -> None:
    approved_versions(registry, people, 3)
    first = deployments.activate(registry, people["deployer"], "credit_line", 1)
    second = deployments.activate(registry, people["deployer"], "credit_line", 2, challenger=1, percent=20)
    later = audit.now() + timedelta(days=30)
    scheduled = deployments.activate(registry, people["deployer"], "credit_line", 3, at=later)
    assert scheduled.action == "activate" and scheduled.effective_at == later
    before_any = first.effective_at - timedelta(microseconds=1)
    expected = [
        (before_any, None),
        (first.effective_at, 1),
        (second.effective_at - timedelta(microseconds=1), 1),
        (second.effective_at, 2),
        (later - timedelta(microseconds=1), 2),
        (later, 3),
        (later + timedelta(days=365), 3),
    ]
    for instant, champion in expected:
        live = deployments.current_deployment(registry, "credit_line", at=instant)
        assert (live.champion if live else None) == champion, instant
    assert deployments.current_deployment(registry, "credit_line", at=second.effective_at).challenger == 1
    assert [d.champion for d in deployments.history(registry, "credit_line")] == [1, 2, 3]
    with registry.read() as session:
        actions = [
            event.action for event in audit.events(session, "policy:credit_line") if "deployment" in event.action
        ]
    assert actions == ["deployment.activated", "deployment.activated", "deployment.scheduled"]


def test_activation_times_must_be_in_the_future_and_zoned(registry: Registry, people: dict[str, User]) -> None:
    approved_versions(registry, people, 1)
    past = datetime(2020, 1, 1, tzinfo=UTC)
    with pytest.raises(RegistryError) as caught:
        deployments.activate(registry, people["deployer"], "credit_line", 1, at=past)
    assert caught.value.message == "the activation time 2020-01-01T00:00:00+00:00 is not in the future"
    with pytest.raises(RegistryError) as caught:
        deployments.activate(registry, people["deployer"], "credit_line", 1, at=datetime(2099, 1, 1))
    assert caught.value.message.startswith("give the activation time with its time zone")


def test_rollback_needs_an_earlier_version(registry: Registry, people: dict[str, User]) -> None:
    approved_versions(registry, people, 2)
    deployments.activate(registry, people["deployer"], "credit_line", 1)
    with pytest.raises(RegistryError) as caught:
        deployments.rollback(registry, people["deployer"], "credit_line", 2)
    assert caught.value.message == (
        "a rollback goes to an earlier version than the champion (version 1); use activate for version 2"
    )


def test_a_rollback_cancels_an_older_pending_schedule(registry: Registry, people: dict[str, User]) -> None:
    approved_versions(registry, people, 3)
    deployments.activate(registry, people["deployer"], "credit_line", 2)
    scheduled = deployments.activate(registry, people["deployer"], "credit_line", 3, at=audit.now() + timedelta(days=1))
    back = deployments.rollback(registry, people["deployer"], "credit_line", 1, "v2 misbehaves")
    far = audit.now() + timedelta(days=2)
    assert deployments.current_deployment(registry, "credit_line", at=far).champion == 1
    assert [d.champion for d in deployments.history(registry, "credit_line")] == [2, 1]
    everything = deployments.history(registry, "credit_line", include_cancelled=True)
    assert [(d.champion, d.cancelled_by) for d in everything] == [(2, None), (1, None), (3, back.id)]
    assert scheduled.id != back.id
    # A schedule made after the rollback stands.
    again = deployments.activate(registry, people["deployer"], "credit_line", 3, at=audit.now() + timedelta(days=1))
    assert deployments.current_deployment(registry, "credit_line", at=far).id == again.id


def test_serving_is_what_current_deployment_says_for_every_policy(registry: Registry, people: dict[str, User]) -> None:
    """The server's one-read view: each policy's live deployment, and when the next scheduled one takes effect."""
    assert deployments.serving(registry) == ({}, None)
    approved_versions(registry, people, 3)
    deployments.activate(registry, people["deployer"], "credit_line", 1)
    soon = audit.now() + timedelta(hours=1)
    later = soon + timedelta(hours=1)
    deployments.activate(registry, people["deployer"], "credit_line", 3, at=later)
    deployments.activate(registry, people["deployer"], "credit_line", 2, at=soon)  # cancels nothing: it is earlier
    live, next_at = deployments.serving(registry)
    assert live == {"credit_line": deployments.current_deployment(registry, "credit_line")}
    assert live["credit_line"].champion == 1 and next_at == soon
    live_then, next_then = deployments.serving(registry, soon + timedelta(minutes=1))
    assert live_then["credit_line"].champion == 2 and next_then is None  # the later schedule was cancelled by 2
