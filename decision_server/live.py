"""What a worker serves right now: each policy's live deployment, compiled, with its lists prepared, and the
API keys — one immutable `Snapshot`, swapped atomically when the registry changes.

Input: a `Registry` and the loaded plugins. Output: `Live.snapshot`, read once per request (a request in flight
finishes on the snapshot it started with, whatever is swapped in meanwhile).

A refresher thread polls the registry every `refresh_seconds`: one query for the newest audit event (every
activation, rollback, list change and key change writes one) and the clock against the next scheduled
activation and the next list-entry expiry. Only when one of those moved does it rebuild: versions are compiled
once per (policy, number) and lists prepared once per (name, revision), off the request path; then one
reference is swapped. While the database is down the last snapshot goes on serving.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import compiler
from compiler import Policy, PreparedList, PreparedLists
from decision_server import metrics
from decision_server.plugins import Plugins
from registry import audit, deployments, lists, policies, users
from registry.database import Registry
from registry.entities import Deployment
from registry.errors import RegistryError
from registry.users import KeyVerifier

log = logging.getLogger("decide.server.live")


@dataclass(frozen=True)
class LiveVersion:
    """One version of a policy, compiled, with the lists it reads prepared at their current revisions."""

    policy_name: str
    number: int
    policy: Policy
    prepared: Mapping[str, PreparedList]  # each list once per revision, shared by every version reading it
    lists: PreparedLists
    list_revisions: dict[str, Any]
    personal: frozenset[str]  # its pii inputs
    key_field: str | None  # its input marked `key`: what routing hashes
    categorical: tuple[str, ...]  # outputs with a declared set of values or bool: outcome metrics

    @classmethod
    def build(cls, policy_name: str, number: int, policy: Policy, prepared: Mapping[str, PreparedList]) -> LiveVersion:
        """The version with `prepared` (PreparedList objects: nothing is converted again) and what is derived
        from its fields; raises InputError when a list it reads is not in `prepared`."""
        categorical = tuple(
            field.name
            for field in policy.outputs
            if field.name != "reasons" and (field.type == "bool" or (field.allowed or {}).get("values") is not None)
        )
        return cls(
            policy_name,
            number,
            policy,
            dict(prepared),
            policy.prepare_lists(prepared),
            {name: item.revision for name, item in prepared.items()},
            frozenset(field.name for field in policy.inputs if field.pii),
            next((field.name for field in policy.inputs if field.key), None),
            categorical,
        )


@dataclass(frozen=True)
class LivePolicy:
    name: str
    deployment: Deployment
    champion: LiveVersion
    challenger: LiveVersion | None
    shadows: tuple[LiveVersion, ...]

    @property
    def salt(self) -> str:
        return f"deployment:{self.deployment.id}"

    def arm_version(self, arm: str) -> LiveVersion:
        return self.challenger if arm == "challenger" and self.challenger is not None else self.champion


@dataclass(frozen=True)
class Snapshot:
    policies: Mapping[str, LivePolicy] = field(default_factory=dict)
    keys: Mapping[str, KeyVerifier] = field(default_factory=dict)
    problems: Mapping[str, str] = field(default_factory=dict)  # policy -> why it is not served
    audit_seq: int = -1
    loaded: bool = False


class Live:
    def __init__(
        self,
        registry: Registry,
        plugins: Plugins,
        refresh_seconds: float = 0.25,
        list_source_refresh_seconds: float = 60.0,
    ) -> None:
        self.registry = registry
        self.plugins = plugins
        self.refresh_seconds = refresh_seconds
        self.list_source_refresh_seconds = list_source_refresh_seconds
        self.snapshot = Snapshot()
        self.database_ok = False
        self.last_error: str | None = None
        self._compiled: dict[tuple[str, int], Policy] = {}
        self._prepared: dict[tuple[str, Any, float], PreparedList] = {}  # plugin-sourced lists by revision
        self._registry_lists: dict[str, tuple[int, float, PreparedList]] = {}  # name -> revision, expiry, list
        self._sourced: dict[str, tuple[float, str, list[Any]]] = {}
        self._next_expiry = float("inf")
        self._wake_at = float("inf")  # the next scheduled activation or list expiry (epoch seconds)
        self._lock = threading.Lock()  # one refresh at a time (the thread, and a caller forcing one)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------------------- background refresh

    def start(self) -> None:
        self.refresh()
        self._thread = threading.Thread(target=self._run, name="decide-refresher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.refresh_seconds):
            self.refresh()

    def refresh(self, force: bool = False) -> bool:
        """Rebuild the snapshot if the registry changed (or `force`); True when a new one was swapped in."""
        with self._lock:
            try:
                seq = self.registry.latest_audit_seq()
                self.database_ok = True
            except RegistryError as exc:
                if self.database_ok or self.last_error is None:
                    log.warning("registry unavailable, serving the last deployments: %s", exc.message)
                self.database_ok, self.last_error = False, exc.message
                return False
            due = time.time() >= self._wake_at or self._sources_due()
            if not force and self.snapshot.loaded and seq == self.snapshot.audit_seq and not due:
                return False
            try:
                snapshot = self._build(seq)
            except RegistryError as exc:
                self.database_ok, self.last_error = False, exc.message
                log.warning("could not reload deployments: %s", exc.message)
                return False
            previous = self.snapshot
            self.snapshot = snapshot  # the swap: one reference, read once by each request
            for name, live in snapshot.policies.items():
                old = previous.policies.get(name)
                if old is None or old.deployment != live.deployment:
                    metrics.SWAPS.labels(name).inc()
                    log.info("%s: serving %s", name, _deployment_text(live.deployment))
            return True

    def _sources_due(self) -> bool:
        now = time.monotonic()
        return any(now - fetched >= self.list_source_refresh_seconds for fetched, _, _ in self._sourced.values())

    # ----------------------------------------------------------------------------- building a snapshot

    def _build(self, seq: int) -> Snapshot:
        wake_at = self._next_expiry = float("inf")
        keys = users.key_verifiers(self.registry)
        registry_lists = {item.name: item for item in lists.list_lists(self.registry)}
        served: dict[str, LivePolicy] = {}
        problems: dict[str, str] = {}
        now = audit.now()
        live_now, next_scheduled = deployments.serving(self.registry, now)
        if next_scheduled is not None:
            wake_at = next_scheduled.timestamp()
        for name, deployment in live_now.items():
            try:
                versions = [self._live_version(name, number, registry_lists) for number in deployment.versions]
            except (RegistryError, compiler.DecideError) as exc:
                problems[name] = str(exc)
                log.error("%s: cannot serve %s: %s", name, _deployment_text(deployment), exc)
                old = self.snapshot.policies.get(name)
                if old is not None:
                    served[name] = old  # keep serving what worked
                continue
            challenger = versions[1] if deployment.challenger is not None else None
            shadows = tuple(versions[2 if challenger else 1 :])
            served[name] = LivePolicy(name, deployment, versions[0], challenger, shadows)
        self._wake_at = min(wake_at, self._next_expiry)
        return Snapshot(served, keys, problems, seq, loaded=True)

    def compiled_version(self, policy: str, number: int) -> Policy:
        """A version compiled once per worker (versions never change); only approved versions serve."""
        cached = self._compiled.get((policy, number))
        if cached is not None:
            return cached
        version = policies.get_version(self.registry, policy, number)
        if version.state != "approved":
            raise RegistryError(
                "refused", f"version {number} of {policy} is {version.state}, not approved: it cannot decide"
            )
        compiled = compiler.compile_source(version.source, f"{policy}.policy", functions=self.plugins.functions)
        self._compiled[(policy, number)] = compiled
        return compiled

    def _live_version(self, policy: str, number: int, registry_lists: Mapping[str, Any]) -> LiveVersion:
        compiled = self.compiled_version(policy, number)
        prepared: dict[str, PreparedList] = {}
        for name, element_type in compiled.store_lists.items():
            prepared[name] = self._prepared_list(name, element_type, registry_lists)
        return LiveVersion.build(policy, number, compiled, prepared)

    def _prepared_list(self, name: str, element_type: str, registry_lists: Mapping[str, Any]) -> PreparedList:
        source = self.plugins.list_sources.get(name)
        if source is not None:
            fetched = self._sourced.get(name)
            if fetched is None or time.monotonic() - fetched[0] >= self.list_source_refresh_seconds:
                try:
                    revision, members = source.fetch()
                    fetched = (time.monotonic(), f"plugin:{revision}", list(members))
                    self._sourced[name] = fetched
                except Exception as exc:  # a failing source keeps its last members; without any, no serving
                    log.error("list source %s failed: %s", name, type(exc).__name__)
                    if fetched is None:
                        raise RegistryError("unavailable", f"the list source of {name!r} failed") from None
            _, revision, members = fetched
            key = (name, revision, 0.0)
            if key not in self._prepared:
                self._prepared[key] = compiler.prepare_list(name, element_type, members, revision=revision)
            return self._prepared[key]
        item = registry_lists.get(name)
        if item is None:
            raise RegistryError("not_found", f"list {name!r} is not in the registry (nor supplied by a plugin)")
        cached = self._registry_lists.get(name)
        if cached is not None and cached[0] == item.revision and time.time() < cached[1]:
            # Unchanged since it was prepared: no need to read 100,000 members again for an unrelated change.
            self._next_expiry = min(self._next_expiry, cached[1])
            return cached[2]
        info, entries = lists.members(self.registry, name, masked=False)
        expiries = [entry.expires_at.timestamp() for entry in entries if entry.expires_at is not None]
        next_expiry = min(expiries, default=float("inf"))
        self._next_expiry = min(self._next_expiry, next_expiry)
        values = [lists.typed_value(info.element_type, entry.value) for entry in entries]
        prepared = compiler.prepare_list(name, element_type, values, revision=str(info.revision))
        if cached is not None and cached[0] == info.revision and cached[2].members == prepared.members:
            prepared = cached[2]  # the same members: keep the object every live version already shares
        self._registry_lists[name] = (info.revision, next_expiry, prepared)
        return prepared


def _deployment_text(deployment: Deployment) -> str:
    text = f"version {deployment.champion}"
    if deployment.challenger is not None:
        text += f", challenger {deployment.challenger} at {deployment.challenger_percent}%"
    if deployment.shadows:
        text += ", shadows " + ", ".join(map(str, deployment.shadows))
    return f"{text} (deployment {deployment.id})"


def at_instant(text: str | datetime | None) -> datetime | None:
    return audit.parse_instant(text) if text else None
