"""Demo data: an empty registry seeded with the example policies, live, so `decide serve` has something to serve.

Input: a `Registry` at the current schema with no users. Output: a `DemoSeed` with the demo users and their
generated passwords, and one API key (both shown once, by `decide demo-data`).

Everything goes through the same service functions as real use, with the same rules: each example policy in
policies/ is saved and submitted by the author, approved by a different person, and activated by the deployer;
the blacklist's entries are requested by the list manager and approved by the list approver.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlmodel import func, select

from registry import deployments, lists, policies, users
from registry.database import Registry
from registry.errors import RegistryError
from registry.models import UserRow

EXAMPLES = Path(__file__).resolve().parents[1] / "policies"
DEMO_USERS = {
    "admin": ("admin",),
    "alice": ("author", "list_manager"),
    "bob": ("approver", "list_approver"),
    "dora": ("deployer",),
    "carl": ("auditor",),
}


@dataclass(frozen=True)
class DemoSeed:
    passwords: dict[str, str]
    roles: dict[str, tuple[str, ...]]
    api_key: str
    policies: tuple[str, ...]


def seed(registry: Registry, examples: Path = EXAMPLES) -> DemoSeed:
    """Seed an empty registry (refused when it already has users: demo data never mixes with real data)."""
    with registry.read() as session:
        if session.exec(select(func.count()).select_from(UserRow)).one():
            raise RegistryError("conflict", "the registry already has users: demo data is only for an empty database")
    passwords = {name: secrets.token_urlsafe(12) for name in DEMO_USERS}
    created = {}
    admin = users.add_user(registry, None, "admin", passwords["admin"], DEMO_USERS["admin"])
    for name, roles in DEMO_USERS.items():
        if name != "admin":
            created[name] = users.add_user(registry, admin, name, passwords[name], roles)
    author, approver, deployer = created["alice"], created["bob"], created["dora"]
    names = []
    for policy_path in sorted(examples.glob("*.policy")):
        tests_path = policy_path.with_name(policy_path.stem + ".tests.json")
        draft = policies.save_draft(registry, author, policy_path.read_text(encoding="utf-8"), tests_path.read_text())
        version = policies.submit(registry, author, draft.policy, note="the example policy, as shipped")
        policies.approve(registry, approver, draft.policy, version.number, comment="demo: reviewed")
        deployments.activate(registry, deployer, draft.policy, version.number, note="demo data")
        names.append(draft.policy)
    blacklist = examples / "examples" / "blacklist.txt"
    if blacklist.exists() and any(item.name == "blacklist" for item in lists.list_lists(registry)):
        values = [line.strip() for line in blacklist.read_text().splitlines() if line.strip()]
        request = lists.request_add(registry, author, "blacklist", values, reason="demo: known fraud")
        lists.decide_change(registry, approver, request.id, "approve", comment="demo: checked")
    _, api_key = users.create_api_key(registry, admin, "demo origination system", names)
    return DemoSeed(passwords, dict(DEMO_USERS), api_key, tuple(names))
