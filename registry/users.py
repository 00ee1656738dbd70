"""Users, their roles, sign-in, and the API keys calling systems use.

Input: a `Registry`, the acting user (an admin, except for the very first user) and what to change.
Output: `User` / `ApiKey` entities; each change is one transaction with its audit event.

Passwords are hashed with Argon2id (argon2-cffi); a hash made with older parameters is upgraded at the next
sign-in. API keys are random (256 bits), so they are stored as a SHA-256 of the secret — fast enough to check
on every decision request — and shown once, at creation, as `dk_<id>.<secret>`; the id alone is what logs show.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session, col, func, select

from registry import audit
from registry.access import authorize, current_roles, require
from registry.database import Registry
from registry.entities import ApiKey, User
from registry.errors import RegistryError, not_found
from registry.models import ROLES, ApiKeyRow, ApiKeyScopeRow, PolicyRow, UserRoleRow, UserRow

NAME_PATTERN = re.compile(r"[a-z][a-z0-9_.-]{0,99}")
MIN_PASSWORD_LENGTH = 8
_hasher = PasswordHasher()
KEY_PATTERN = re.compile(r"dk_([0-9a-f]{12})\.([A-Za-z0-9_-]{20,100})")


def _check_roles(roles: Iterable[str]) -> tuple[str, ...]:
    roles = tuple(dict.fromkeys(roles))
    unknown = [role for role in roles if role not in ROLES]
    if unknown:
        raise RegistryError("invalid", f"unknown role {unknown[0]!r}; the roles are: {', '.join(ROLES)}")
    return roles


def _user_entity(session: Session, row: UserRow) -> User:
    return User(name=row.name, roles=current_roles(session, row.name) or (), created_at=row.created_at)


def _user_row(session: Session, name: str) -> UserRow:
    row = session.exec(select(UserRow).where(UserRow.name == name)).first()
    if row is None:
        raise not_found(f"user {name!r}")
    return row


def add_user(registry: Registry, actor: User | None, name: str, password: str, roles: Iterable[str]) -> User:
    """Create a user. On an empty registry `actor` is None and the roles must include admin; after that only an
    admin may add users."""
    if actor is not None:
        authorize(registry, actor, "manage users", f"user:{name}")
    roles = _check_roles(roles)
    if not NAME_PATTERN.fullmatch(name):
        raise RegistryError(
            "invalid", f"{name!r} is not a user name: lower-case letters, digits, '_', '.', '-', starting with a letter"
        )
    if len(password) < MIN_PASSWORD_LENGTH:
        raise RegistryError("invalid", f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if not roles:
        raise RegistryError("invalid", "give the new user at least one role")
    password_hash = _hasher.hash(password)  # slow on purpose: outside the write lock
    with registry.write() as session:
        first = session.exec(select(func.count()).select_from(UserRow)).one() == 0
        if first:
            if "admin" not in roles:
                raise RegistryError("invalid", "the first user of a registry must have the admin role")
            actor_name = name
        else:
            if actor is None:
                raise RegistryError("permission_denied", "only an admin may add users: give one with --user")
            require(session, actor, "manage users", f"user:{name}")
            actor_name = actor.name
        if session.exec(select(UserRow).where(UserRow.name == name)).first() is not None:
            raise RegistryError("conflict", f"there is already a user {name!r}")
        row = UserRow(name=name, password_hash=password_hash, created_at=audit.now())
        session.add(row)
        session.flush()
        for role in roles:
            session.add(UserRoleRow(user_id=row.id, role=role))
        session.flush()
        audit.append(session, actor_name, "user.added", f"user:{name}", {"roles": list(roles)})
        return _user_entity(session, row)


def authenticate(registry: Registry, name: str, password: str) -> User:
    """The user, if the password is theirs; else an `authentication_failed` error (and an audit event)."""
    name = name[:100]  # no user name is longer; the audit trail stores at most that
    with registry.read() as session:
        row = session.exec(select(UserRow).where(UserRow.name == name)).first()
        stored = row.password_hash if row else None
        user = _user_entity(session, row) if row else None
    try:
        if stored is None:
            raise VerificationError()
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        with registry.write() as session:
            audit.append(session, name, "auth.failed", f"user:{name}", {"known_user": stored is not None})
        raise RegistryError("authentication_failed", f"wrong user name or password for {name!r}") from None
    assert user is not None
    if _hasher.check_needs_rehash(stored):
        # Hashed with older (cheaper) parameters: store a hash with today's, now that the password is known.
        with registry.write() as session:
            row = _user_row(session, name)
            row.password_hash = _hasher.hash(password)
            session.add(row)
    return user


def get_user(registry: Registry, name: str) -> User:
    with registry.read() as session:
        return _user_entity(session, _user_row(session, name))


def list_users(registry: Registry) -> list[User]:
    with registry.read() as session:
        return [_user_entity(session, row) for row in session.exec(select(UserRow).order_by(col(UserRow.name)))]


def change_roles(
    registry: Registry, actor: User, name: str, add: Iterable[str] = (), remove: Iterable[str] = ()
) -> User:
    """Give or take roles; the last admin keeps the admin role."""
    authorize(registry, actor, "manage users", f"user:{name}")
    add, remove = _check_roles(add), _check_roles(remove)
    with registry.write() as session:
        require(session, actor, "manage users", f"user:{name}")
        row = _user_row(session, name)
        before = set(current_roles(session, name) or ())
        after = (before | set(add)) - set(remove)
        if not after:
            raise RegistryError("invalid", f"{name} would have no role left")
        if "admin" in before and "admin" not in after:
            admins = session.exec(
                select(func.count()).select_from(UserRoleRow).where(UserRoleRow.role == "admin")
            ).one()
            if admins <= 1:
                raise RegistryError("conflict", f"{name} is the last admin: give another user the admin role first")
        for role in after - before:
            session.add(UserRoleRow(user_id=row.id, role=role))
        for role in before - after:
            session.delete(session.get(UserRoleRow, (row.id, role)))
        session.flush()
        audit.append(
            session,
            actor.name,
            "user.roles_changed",
            f"user:{name}",
            {"added": sorted(after - before), "removed": sorted(before - after)},
        )
        return _user_entity(session, row)


# ----------------------------------------------------------------------------- API keys


def _key_entity(session: Session, row: ApiKeyRow) -> ApiKey:
    scopes = session.exec(
        select(ApiKeyScopeRow.policy_name).where(ApiKeyScopeRow.key_id == row.id).order_by(ApiKeyScopeRow.policy_name)
    ).all()
    creator = session.get(UserRow, row.created_by)
    return ApiKey(
        id=row.id,
        name=row.name,
        policies=tuple(scopes),
        created_by=creator.name if creator else "?",
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


def _secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(registry: Registry, actor: User, name: str, policies: Iterable[str]) -> tuple[ApiKey, str]:
    """A new key for a calling system, allowed to call `policies`; returns the key and its full text (shown once)."""
    authorize(registry, actor, "manage API keys", "key:new")
    policies = tuple(sorted(set(policies)))
    if not name.strip() or len(name) > 100:
        raise RegistryError("invalid", "give the key a name (which system uses it) of at most 100 characters")
    if not policies:
        raise RegistryError("invalid", "a key must be scoped to at least one policy (--policy NAME)")
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    with registry.write() as session:
        user_id = require(session, actor, "manage API keys", f"key:{key_id}")
        known = set(session.exec(select(PolicyRow.name).where(col(PolicyRow.name).in_(policies))).all())
        missing = [policy for policy in policies if policy not in known]
        if missing:
            raise RegistryError("not_found", f"policy {missing[0]!r} does not exist (a key can only name policies)")
        row = ApiKeyRow(
            id=key_id, name=name, secret_hash=_secret_hash(secret), created_by=user_id, created_at=audit.now()
        )
        session.add(row)
        session.flush()
        for policy in policies:
            session.add(ApiKeyScopeRow(key_id=key_id, policy_name=policy))
        session.flush()
        audit.append(session, actor.name, "key.created", f"key:{key_id}", {"name": name, "policies": list(policies)})
        return _key_entity(session, row), f"dk_{key_id}.{secret}"


def revoke_api_key(registry: Registry, actor: User, key_id: str) -> ApiKey:
    with registry.write() as session:
        user_id = require(session, actor, "manage API keys", f"key:{key_id}")
        row = session.get(ApiKeyRow, key_id)
        if row is None:
            raise not_found(f"API key {key_id!r}")
        if row.revoked_at is not None:
            raise RegistryError("conflict", f"API key {key_id} was already revoked")
        row.revoked_at, row.revoked_by = audit.now(), user_id
        session.add(row)
        session.flush()
        audit.append(session, actor.name, "key.revoked", f"key:{key_id}", {})
        return _key_entity(session, row)


def list_api_keys(registry: Registry) -> list[ApiKey]:
    with registry.read() as session:
        return [
            _key_entity(session, row) for row in session.exec(select(ApiKeyRow).order_by(col(ApiKeyRow.created_at)))
        ]


def authenticate_api_key(registry: Registry, key: str) -> ApiKey:
    """The active key whose full text is `key`, else `authentication_failed` (the message never repeats the key)."""
    key_id, _ = _key_parts(key)
    with registry.read() as session:
        row = session.get(ApiKeyRow, key_id)
        verifier = None if row is None else KeyVerifier(row.secret_hash, _key_entity(session, row))
    return match_api_key(key, {key_id: verifier} if verifier else {})


@dataclass(frozen=True)
class KeyVerifier:
    """What checking a key needs: the hash of its secret and the key (never the secret itself)."""

    secret_hash: str
    key: ApiKey


def key_verifiers(registry: Registry) -> dict[str, KeyVerifier]:
    """Every key by id, revoked ones included: the decision server checks keys against this table in memory,
    so a request never waits on the database (and keys keep working while it is down)."""
    with registry.read() as session:
        return {
            row.id: KeyVerifier(row.secret_hash, _key_entity(session, row)) for row in session.exec(select(ApiKeyRow))
        }


def _key_parts(key: str) -> tuple[str, str]:
    match = KEY_PATTERN.fullmatch(key.strip())
    if match is None:
        raise RegistryError("authentication_failed", "the API key is not in the form dk_<id>.<secret>")
    key_id, secret = match.groups()
    return key_id, secret


def match_api_key(key: str, verifiers: Mapping[str, KeyVerifier]) -> ApiKey:
    """The active key whose full text is `key`, checked against `key_verifiers`, else `authentication_failed`."""
    key_id, secret = _key_parts(key)
    verifier = verifiers.get(key_id)
    if verifier is None or not hmac.compare_digest(verifier.secret_hash, _secret_hash(secret)):
        raise RegistryError("authentication_failed", f"unknown API key {key_id}")
    if verifier.key.revoked_at is not None:
        raise RegistryError("authentication_failed", f"API key {key_id} was revoked")
    return verifier.key
