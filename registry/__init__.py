"""The policy registry: the system of record for policies, versions, approvals, deployments, lists and audit.

Everything here is plain functions over a `Registry` handle (registry.database), each one transaction that also
appends its audit event, returning frozen entities (registry.entities). Nothing here imports Flask: the CLI, the
decision server and the admin UI all call these same functions. docs/registry.md describes the lifecycle, the
roles and what the database itself enforces.

Modules, in dependency order: errors, models, entities, audit, database, migrate, access, users, lists,
policies, deployments, demo.
"""

from __future__ import annotations

from registry.database import DEFAULT_URL, Registry, resolve_url
from registry.errors import HTTP_STATUS, RegistryError

__all__ = ["DEFAULT_URL", "HTTP_STATUS", "Registry", "RegistryError", "resolve_url"]
