"""Who may do what: the roles, what each operation needs, and the one check every operation calls.

Input: a write session, the acting user and the operation. Output: nothing, or a `RegistryError`
("permission_denied") that names the role that is missing and is recorded in the audit trail.

Roles are separate on purpose: `admin` manages users, keys and settings but does not by itself author, approve
or deploy, so no single account can take a policy from text to production alone.
"""

from __future__ import annotations

from sqlmodel import Session, select

from registry.database import Registry
from registry.entities import User
from registry.errors import RegistryError
from registry.models import ROLES, UserRoleRow, UserRow

# The operations and the role each needs, as data: the CLI, the server and the UI all go through `require`.
NEEDS = {
    "save a draft": "author",
    "submit a version": "author",
    "approve or reject a version": "approver",
    "activate a version": "deployer",
    "roll back a policy": "deployer",
    "request a list change": "list_manager",
    "approve or reject a list change": "list_approver",
    "read the audit trail": "auditor",
    "manage users": "admin",
    "manage API keys": "admin",
    "change a policy's settings": "admin",
}


def current_roles(session: Session, name: str) -> tuple[str, ...] | None:
    """The roles the user has now (None when there is no such user)."""
    user = session.exec(select(UserRow).where(UserRow.name == name)).first()
    if user is None:
        return None
    roles = session.exec(select(UserRoleRow.role).where(UserRoleRow.user_id == user.id)).all()
    return tuple(role for role in ROLES if role in roles)


def require(session: Session, actor: User, operation: str, obj: str) -> int:
    """Check that `actor` has the role `operation` needs, as stored now; return the actor's user id."""
    role = NEEDS[operation]
    user = session.exec(select(UserRow).where(UserRow.name == actor.name)).first()
    roles = current_roles(session, actor.name) if user is not None else None
    if user is None or roles is None:
        raise RegistryError("authentication_failed", f"there is no user {actor.name!r}")
    if role not in roles:
        had = ", ".join(roles) or "none"
        raise RegistryError(
            "permission_denied",
            f"{actor.name} may not {operation}: that needs the {role} role (their roles: {had})",
            audit_event=(actor.name, "permission.denied", obj, {"operation": operation, "missing_role": role}),
        )
    assert user.id is not None
    return user.id


def authorize(registry: Registry, actor: User, operation: str, obj: str) -> None:
    """`require` in a transaction of its own, before anything about the request is looked at: a user without the
    role learns nothing about their request's validity, and the refusal is in the audit trail."""
    with registry.write() as session:
        require(session, actor, operation, obj)
