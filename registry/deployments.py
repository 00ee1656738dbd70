"""Deployments: which approved versions a policy serves, from when — champion, challenger and shadows.

Input: a `Registry`, the acting deployer, the policy and the versions. Output: `Deployment` entities.

The history is append-only: activating (now or at a future time) and rolling back each add one deployment,
live from its `effective_at` until the next one takes effect. A deployment decided after a pending scheduled
one, taking effect before it, cancels it (a rollback is never undone by an older schedule). "What was live at
instant t" is the latest deployment in force with `effective_at <= t`, which is how a decision made at t is
replayed. The database holds the rest: one champion and at most one challenger per deployment, only approved
versions of the policy itself, no two deployments of a policy taking effect at the same instant, and no change
to a deployment once written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlmodel import Session, col, select

from registry import audit
from registry.access import authorize, require
from registry.database import Registry
from registry.entities import Deployment, User, Version
from registry.errors import RegistryError
from registry.models import DeploymentFallbackRow, DeploymentMemberRow, DeploymentRow, PolicyRow, UserRow, VersionRow
from registry.policies import find_policy_row, find_version_row, version_entity


def _deployment_entity(session: Session, policy: str, row: DeploymentRow) -> Deployment:
    members = session.exec(
        select(DeploymentMemberRow, VersionRow.number)
        .join(VersionRow, col(VersionRow.id) == col(DeploymentMemberRow.version_id))
        .where(DeploymentMemberRow.deployment_id == row.id)
        .order_by(col(VersionRow.number))
    ).all()
    champion = next(number for member, number in members if member.role == "champion")
    challenger = next(((number, member.percent) for member, number in members if member.role == "challenger"), None)
    creator = session.get(UserRow, row.created_by)
    assert row.id is not None
    return Deployment(
        id=row.id,
        policy=policy,
        action=row.action,
        effective_at=row.effective_at,
        created_at=row.created_at,
        created_by=creator.name if creator else "?",
        champion=champion,
        challenger=challenger[0] if challenger else None,
        challenger_percent=challenger[1] if challenger else None,
        shadows=tuple(number for member, number in members if member.role == "shadow"),
        note=row.note,
        fallback=orjson.loads(fallback.outcome_json)
        if (fallback := session.get(DeploymentFallbackRow, row.id))
        else None,
    )


def _in_force(session: Session, policy_row: PolicyRow) -> tuple[list[DeploymentRow], dict[int, int]]:
    """The policy's deployments that take effect, in order, and {cancelled id: id of the one that cancelled it}.

    A deployment made later that takes effect earlier than a still-pending scheduled one cancels it: a rollback or
    an activation decided after a schedule overrides it (to keep the schedule, schedule it again)."""
    rows = session.exec(
        select(DeploymentRow).where(DeploymentRow.policy_id == policy_row.id).order_by(col(DeploymentRow.id))
    ).all()
    kept: list[DeploymentRow] = []
    cancelled: dict[int, int] = {}
    for row in rows:
        assert row.id is not None
        for pending in kept:
            if pending.effective_at > row.effective_at:
                assert pending.id is not None
                cancelled[pending.id] = row.id
        kept = [pending for pending in kept if pending.id not in cancelled]
        kept.append(row)
    return kept, cancelled


def _live_row(session: Session, policy_row: PolicyRow, at: datetime) -> DeploymentRow | None:
    live = [row for row in _in_force(session, policy_row)[0] if row.effective_at <= at]
    return live[-1] if live else None


def current_deployment(registry: Registry, policy: str, at: datetime | None = None) -> Deployment | None:
    """The deployment live at instant `at` (default: now), or None before the policy's first activation."""
    at = at or audit.now()
    with registry.read() as session:
        policy_row = find_policy_row(session, policy)
        row = _live_row(session, policy_row, at)
        return _deployment_entity(session, policy, row) if row else None


def serving(registry: Registry, at: datetime | None = None) -> tuple[dict[str, Deployment], datetime | None]:
    """Every policy's deployment live at `at` (default: now), and the earliest later instant at which a scheduled
    one takes effect (None if none is pending) — in one read, for a server that polls this often."""
    at = at or audit.now()
    live: dict[str, Deployment] = {}
    next_at: datetime | None = None
    with registry.read() as session:
        for policy_row in session.exec(select(PolicyRow).order_by(col(PolicyRow.name))).all():
            kept, _ = _in_force(session, policy_row)
            current = [row for row in kept if row.effective_at <= at]
            if current:
                live[policy_row.name] = _deployment_entity(session, policy_row.name, current[-1])
            for row in kept:
                if row.effective_at > at and (next_at is None or row.effective_at < next_at):
                    next_at = row.effective_at
    return live, next_at


def history(registry: Registry, policy: str, include_cancelled: bool = False) -> list[Deployment]:
    """The deployments of the policy that take effect, in order (scheduled ones included); with
    `include_cancelled`, also the scheduled ones a later decision cancelled (`cancelled_by` set)."""
    with registry.read() as session:
        policy_row = find_policy_row(session, policy)
        kept, cancelled = _in_force(session, policy_row)
        rows = kept
        if include_cancelled:
            rows = session.exec(
                select(DeploymentRow)
                .where(DeploymentRow.policy_id == policy_row.id)
                .order_by(col(DeploymentRow.effective_at), col(DeploymentRow.id))
            ).all()
        return [
            replace(_deployment_entity(session, policy, row), cancelled_by=cancelled.get(row.id or 0)) for row in rows
        ]


def _deploy(
    registry: Registry,
    actor: User,
    policy: str,
    action: str,
    champion: int,
    challenger: int | None,
    percent: int | None,
    shadows: Iterable[int],
    at: datetime | None,
    note: str | None,
    fallback: Mapping[str, Any] | None = None,
) -> Deployment:
    operation = "roll back a policy" if action == "rollback" else "activate a version"
    authorize(registry, actor, operation, f"policy:{policy}")
    shadows = tuple(dict.fromkeys(shadows))
    if (challenger is None) != (percent is None):
        raise RegistryError(
            "invalid", "a challenger needs a traffic percentage (--percent), and a percentage a challenger"
        )
    if percent is not None and not 1 <= percent <= 99:
        raise RegistryError("invalid", f"the challenger's share must be 1 to 99 percent, not {percent}")
    if challenger == champion:
        raise RegistryError("invalid", f"version {champion} cannot be both champion and challenger")
    if champion in shadows or (challenger is not None and challenger in shadows):
        raise RegistryError("invalid", "a shadow version must differ from the champion and the challenger")
    if at is not None:
        if at.tzinfo is None:
            raise RegistryError(
                "invalid", "give the activation time with its time zone (e.g. 2027-01-04T09:00:00+01:00)"
            )
        at = at.astimezone(UTC)
        if at <= audit.now():
            raise RegistryError("invalid", f"the activation time {at.isoformat()} is not in the future")
    with registry.write() as session:
        # Read the clock under the write lock: the activation committed last is the one live now.
        now = audit.now()
        user_id = require(session, actor, operation, f"policy:{policy}")
        policy_row = find_policy_row(session, policy)
        roles = [(champion, "champion", None)]
        if challenger is not None:
            roles.append((challenger, "challenger", percent))
        roles.extend((number, "shadow", None) for number in shadows)
        rows = []
        for number, role, share in roles:
            version_row = find_version_row(session, policy_row, number)
            version = version_entity(session, policy_row, version_row)
            if version.state != "approved":
                raise RegistryError(
                    "conflict",
                    f"version {number} of {policy} is {version.state}, not approved: it cannot be the {role}",
                )
            rows.append((version_row, role, share))
            if role == "champion" and fallback is not None:
                fallback = checked_fallback(version, fallback)
        live = _live_row(session, policy_row, now)
        if action == "rollback":
            if live is None:
                raise RegistryError("conflict", f"{policy} has never been activated: there is nothing to roll back")
            current = _deployment_entity(session, policy, live)
            if champion >= current.champion:
                raise RegistryError(
                    "invalid",
                    f"a rollback goes to an earlier version than the champion (version {current.champion}); "
                    f"use activate for version {champion}",
                )
        elif live is not None and at is None:
            current = _deployment_entity(session, policy, live)
            if (current.champion, current.challenger, current.challenger_percent, set(current.shadows)) == (
                champion,
                challenger,
                percent,
                set(shadows),
            ):
                raise RegistryError("conflict", f"that is already {policy}'s live deployment")
        deployment = DeploymentRow(
            policy_id=policy_row.id,
            effective_at=at or now,
            created_at=now,
            created_by=user_id,
            action=action,
            note=note,
        )
        session.add(deployment)
        session.flush()
        for version_row, role, share in rows:
            session.add(
                DeploymentMemberRow(deployment_id=deployment.id, version_id=version_row.id, role=role, percent=share)
            )
        if fallback is not None:
            session.add(
                DeploymentFallbackRow(deployment_id=deployment.id, outcome_json=orjson.dumps(fallback).decode())
            )
        session.flush()
        entity = _deployment_entity(session, policy, deployment)
        audit.append(
            session,
            actor.name,
            {"rollback": "deployment.rolled_back"}.get(
                action, "deployment.scheduled" if at else "deployment.activated"
            ),
            f"policy:{policy}",
            {
                "deployment": entity.id,
                "champion": champion,
                "challenger": challenger,
                "percent": percent,
                "shadows": list(shadows),
                "effective_at": entity.effective_at.isoformat(),
                "note": note,
                "fallback": fallback,
            },
        )
        return entity


def activate(
    registry: Registry,
    actor: User,
    policy: str,
    version: int,
    challenger: int | None = None,
    percent: int | None = None,
    shadows: Iterable[int] = (),
    at: datetime | None = None,
    note: str | None = None,
    fallback: Mapping[str, Any] | None = None,
) -> Deployment:
    """Make an approved version the champion (with an optional challenger and shadows), now or at `at`.

    `fallback` is the outcome (some of the champion's outputs, and optionally `reasons`) that the decision
    server answers, marked degraded, when evaluating a request fails; without one, such a request is a 422."""
    return _deploy(registry, actor, policy, "activate", version, challenger, percent, shadows, at, note, fallback)


_FALLBACK_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "number": (int, float),
    "bool": (bool,),
    "string": (str,),
    "date": (str,),
    "list": (list,),
}


def checked_fallback(version: Version, fallback: Mapping[str, Any]) -> dict[str, Any]:
    """The fallback outcome, checked against the outputs of the version it stands in for."""
    import compiler
    from compiler.plugins import installed_functions

    if not isinstance(fallback, Mapping) or not fallback:
        raise RegistryError("invalid", 'a fallback outcome is a JSON object of outputs, e.g. {"decision": "refer"}')
    outputs = {
        field.name: field
        for field in compiler.compile_source(
            version.source, f"{version.policy}.policy", functions=installed_functions()
        ).outputs
    }
    checked: dict[str, Any] = {}
    for name, value in fallback.items():
        if name == "reasons":
            if not isinstance(value, list) or not all(isinstance(code, str) for code in value):
                raise RegistryError("invalid", "the fallback's reasons are a list of reason codes")
        elif name not in outputs:
            raise RegistryError(
                "invalid",
                f"the fallback names {name!r}, which is not an output of {version.ref} "
                f"(its outputs: {', '.join(outputs)})",
            )
        else:
            field = outputs[name]
            kinds = _FALLBACK_TYPES.get(field.type, (object,))
            wrong_bool = isinstance(value, bool) and field.type != "bool"
            if value is not None and (wrong_bool or not isinstance(value, kinds)):
                raise RegistryError("invalid", f"the fallback's {name} must be a {field.type}, not {value!r}")
            allowed = (field.allowed or {}).get("values")
            if value is not None and allowed is not None and value not in allowed:
                raise RegistryError("invalid", f"the fallback's {name} must be one of {allowed}, not {value!r}")
        checked[name] = value
    return checked


def rollback(registry: Registry, actor: User, policy: str, version: int, note: str | None = None) -> Deployment:
    """Make an earlier approved version the champion again, at once, with no challenger or shadows."""
    return _deploy(registry, actor, policy, "rollback", version, None, None, (), None, note)
