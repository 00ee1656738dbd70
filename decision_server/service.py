"""The decision service: everything the HTTP API does, without Flask — authenticate a key, decide, log,
route champion/challenger, run shadows and listeners, replay, describe policies.

Input: the request's parts (the Authorization header, the policy name, the decoded JSON body). Output: a
`Reply` (status, JSON-able body, headers), or an `ApiError`. The Flask views (decision_server.app) only move
bytes in and out; `decide bench` calls the same functions.

Order of checks on a decision: the key (401), its scope for the policy (403), the policy's live deployment or
the pinned version (404), the request's envelope (400), idempotency (409 / replay), then the input (422). A
decision that reaches the engine is logged whatever its outcome — decided, refused for its input, failed, or
answered with the deployment's fallback (degraded) — before the response leaves.
"""

from __future__ import annotations

import concurrent.futures
import datetime as _dt
import hashlib
import logging
import os
import queue
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson

import compiler
from compiler import Decision, EvaluationError, InputError
from compiler.evaluate import implementation
from decision_server import metrics, routing, sealing
from decision_server.config import ConfigError, ServerConfig
from decision_server.errors import ApiError, from_evaluation, from_input, from_registry
from decision_server.live import Live, LivePolicy, LiveVersion
from decision_server.plugins import Plugins, load_plugins
from decision_server.random_bytes import random_bytes
from decision_server.spool import Shipper, Spool
from registry import decisions as decision_log
from registry import lists as registry_lists
from registry import migrate
from registry.database import Registry
from registry.entities import ApiKey, LoggedDecision
from registry.errors import RegistryError
from registry.users import match_api_key

log = logging.getLogger("decide.server")
ENVELOPE = {"input", "as_of", "request_id", "version", "trace", "ignore_extra"}
BATCH_ENVELOPE = {"inputs", "as_of", "version", "trace", "ignore_extra"}


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def uuid7() -> str:
    """A UUIDv7: 48 bits of Unix milliseconds, then random bits, so ids sort by time (RFC 9562)."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(random_bytes.take(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # variant 10
    digits = f"{value:032x}"  # the canonical text form, without building a uuid.UUID
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def _now_text() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="microseconds")


class DecisionService:
    """One per worker process, started after fork (`start`); thread-safe."""

    def __init__(self, config: ServerConfig, plugins: Plugins | None = None) -> None:
        self.config = config
        self.plugins = plugins
        self.started_pid: int | None = None
        self._start_lock = threading.Lock()
        self.served_by = f"{socket.gethostname()}:{os.getpid()}"

    # ----------------------------------------------------------------------------- process lifetime

    def start(self) -> None:
        """Open the registry, load the deployments, start the refresher, the shipper and the background queue.
        Idempotent per process: called after fork, or on the first request."""
        if self.started_pid == os.getpid():  # every request calls this: no lock once started
            return
        with self._start_lock:
            if self.started_pid == os.getpid():
                return
            config = self.config
            self.served_by = f"{socket.gethostname()}:{os.getpid()}"
            if self.plugins is None:
                self.plugins = load_plugins(load_entry_points=config.plugins)
            for problem in self.plugins.problems:
                log.error("plugin problem: %s", problem)
            self.registry = Registry(config.database_url)
            try:
                migrate.require_current_schema(self.registry)
            except RegistryError as exc:
                log.error("%s", exc.message)
            self.sealer = sealing.Sealer(sealing.load_key(config))
            self.live = Live(self.registry, self.plugins, config.refresh_seconds, config.list_source_refresh_seconds)
            self.spool = Spool(config.spool_dir, config.spool_segment_bytes, config.spool_fsync == "always")
            self.shipper = Shipper(
                self.spool,
                lambda records: decision_log.store_decisions(self.registry, records),
                config.ship_interval_seconds,
                config.ship_batch,
                on_shipped=metrics.LOG_SHIPPED.inc,
                on_failure=self._ship_failed,
                on_backlog=metrics.LOG_BACKLOG.set,
                durable=self._log_durable,
            )
            self.background: queue.Queue = queue.Queue(maxsize=config.shadow_queue)
            self.enricher_pool = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="decide-enricher")
            self.live.start()
            self.shipper.start()
            self.metrics_publisher = metrics.Publisher(config.metrics_publish_seconds)
            self.metrics_publisher.start()
            threading.Thread(target=self._background_loop, name="decide-background", daemon=True).start()
            self.started_pid = os.getpid()

    def stop(self) -> None:
        if self.started_pid != os.getpid():
            return
        self.live.stop()
        self.background.put(None)
        self.shipper.stop()
        self.spool.close(lambda: self._log_durable(within_seconds=2.0))
        self.metrics_publisher.stop()
        self.registry.dispose()
        self.started_pid = None

    def _log_durable(self, within_seconds: float = 0.0) -> bool:
        """Whether the stored decisions survive a power loss (asked before a spool segment is deleted), asking
        again for up to `within_seconds` (at a graceful stop, while the other workers finish their writes)."""
        deadline = time.monotonic() + within_seconds
        while True:
            try:
                if decision_log.stored_durably(self.registry):
                    return True
            except RegistryError:
                pass
            if time.monotonic() >= deadline:
                return False  # the segment stays: the next shipper stores it again (as nothing) and deletes it
            time.sleep(0.05)

    def _ship_failed(self, exc: Exception) -> None:
        metrics.LOG_SHIP_FAILURES.inc()
        if self.shipper.failures in (1, 10, 100) or self.shipper.failures % 1000 == 0:
            message = exc.message if isinstance(exc, RegistryError) else type(exc).__name__
            log.warning(
                "decision log: cannot ship to the database (%d tries), spooling: %s", self.shipper.failures, message
            )

    # ----------------------------------------------------------------------------- keys

    def authenticate(self, header: str | None) -> ApiKey:
        if not header:
            raise ApiError("authentication_failed", "send the API key as Authorization: Bearer dk_<id>.<secret>")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError("authentication_failed", "the Authorization header must be Bearer dk_<id>.<secret>")
        try:
            return match_api_key(token, self.live.snapshot.keys)
        except RegistryError as exc:
            raise from_registry(exc) from None

    @staticmethod
    def require_scope(key: ApiKey, policy: str) -> None:
        if not key.may_call(policy):
            raise ApiError("permission_denied", f"API key {key.id} may not call policy {policy!r}")

    # ----------------------------------------------------------------------------- deciding

    def _target(self, policy: str, version: Any) -> tuple[LivePolicy, LiveVersion | None]:
        live = self.live.snapshot.policies.get(policy)
        if live is None:
            problem = self.live.snapshot.problems.get(policy)
            if problem:
                raise ApiError("unavailable", f"policy {policy!r} cannot be served right now: {problem}")
            raise ApiError("not_found", f"policy {policy!r} has no live deployment")
        if version is None:
            return live, None
        _check_version(policy, version)
        for candidate in (live.champion, live.challenger, *live.shadows):
            if candidate is not None and candidate.number == version:
                return live, candidate
        try:
            compiled = self.live.compiled_version(policy, version)
        except RegistryError as exc:
            raise from_registry(exc) from None
        prepared = {name: item for name, item in live.champion.prepared.items() if name in compiled.store_lists}
        try:
            return live, LiveVersion.build(policy, version, compiled, prepared)
        except InputError:
            raise ApiError(
                "unavailable", f"version {version} of {policy} reads lists the live version does not"
            ) from None

    @staticmethod
    def _envelope(body: Any, allowed: set[str], required: str) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError("invalid_request", f'the body must be a JSON object such as {{"{required}": {{...}}}}')
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise ApiError(
                "invalid_request",
                f"unknown field(s) {', '.join(unknown)} in the request (allowed: {', '.join(sorted(allowed))})",
                {"fields": unknown},
            )
        if required not in body:
            raise ApiError("invalid_request", f"the request has no {required!r}", {"field": required})
        for name in ("trace", "ignore_extra"):
            if name in body and not isinstance(body[name], bool):
                raise ApiError("invalid_request", f"{name} must be true or false", {"field": name})
        if body.get("as_of") is not None:
            as_of = body["as_of"]
            try:
                if not isinstance(as_of, str) or len(as_of) != 10:
                    raise ValueError
                _dt.date.fromisoformat(as_of)
            except ValueError:
                raise ApiError("invalid_request", "as_of must be a date YYYY-MM-DD", {"field": "as_of"}) from None
        request_id = body.get("request_id")
        if request_id is not None and (not isinstance(request_id, str) or not 1 <= len(request_id) <= 200):
            raise ApiError(
                "invalid_request", "request_id must be a string of 1 to 200 characters", {"field": "request_id"}
            )
        return body

    def decide(self, key: ApiKey, policy: str, body: Any, started: float) -> Reply:
        self.require_scope(key, policy)
        live, pinned = self._target(policy, body.get("version") if isinstance(body, dict) else None)
        body = self._envelope(body, ENVELOPE, "input")
        request_id = body.get("request_id")
        fingerprint = None
        if request_id is not None:
            try:
                canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
            except TypeError:  # an int past 64 bits or nesting orjson cannot write (see `writable`)
                canonical = orjson.dumps(writable(body), option=orjson.OPT_SORT_KEYS)
            fingerprint = hashlib.sha256(canonical).hexdigest()
            stored = self._stored_response(key, request_id, fingerprint)
            if stored is not None:
                return stored
        try:
            reply, record = self._decide_one(key, live, pinned, body["input"], body, started, request_id)
        except ApiError as exc:
            # A logged refusal (an input or evaluation error) is the response a retry must get too, without a
            # second decision; an error before the engine (no decision id) was never a decision.
            if request_id is None or exc.details.get("decision_id") is None:
                raise
            reply = Reply(exc.status, exc.body())
            return self._remember(key, request_id, fingerprint or "", exc.details["decision_id"], reply)
        if request_id is not None:
            reply = self._remember(key, request_id, fingerprint or "", record["decision_id"], reply)
        return reply

    def _stored_response(self, key: ApiKey, request_id: str, fingerprint: str) -> Reply | None:
        ttl = timedelta(seconds=self.config.idempotency_ttl_seconds)
        try:
            stored = decision_log.find_response(self.registry, key.id, request_id, ttl)
        except RegistryError as exc:
            if exc.code == "unavailable":
                raise ApiError(
                    "unavailable",
                    "a request with a request_id needs the database to stay idempotent, and it is unavailable: "
                    "retry later (or send the request without request_id)",
                ) from None
            raise from_registry(exc) from None
        if stored is None:
            return None
        if stored.fingerprint != fingerprint:
            raise ApiError(
                "conflict",
                f"request_id {request_id!r} was already used with a different body (decision {stored.decision_id})",
                {"decision_id": stored.decision_id},
            )
        return Reply(stored.status_code, orjson.Fragment(stored.response), {"Idempotent-Replayed": "true"})

    def _remember(self, key: ApiKey, request_id: str, fingerprint: str, decision_id: str, reply: Reply) -> Reply:
        encoded = orjson.dumps(reply.body)
        ttl = timedelta(seconds=self.config.idempotency_ttl_seconds)
        try:
            stored = decision_log.remember_response(
                self.registry, key.id, request_id, fingerprint, decision_id, reply.status, encoded, ttl
            )
        except RegistryError:
            log.warning("idempotency: could not record request %s of key %s (database unavailable)", "…", key.id)
            return reply
        if stored.decision_id == decision_id:
            return reply
        if stored.fingerprint != fingerprint:  # a concurrent request with the same id and another body won
            raise ApiError(
                "conflict",
                f"request_id {request_id!r} was already used with a different body (decision {stored.decision_id})",
                {"decision_id": stored.decision_id},
            )
        return Reply(stored.status_code, orjson.Fragment(stored.response), {"Idempotent-Replayed": "true"})

    def _decide_one(
        self,
        key: ApiKey,
        live: LivePolicy,
        pinned: LiveVersion | None,
        record: Any,
        options: Mapping[str, Any],
        started: float,
        request_id: str | None,
    ) -> tuple[Reply, dict[str, Any]]:
        decision_id = uuid7()
        if pinned is not None:
            version = pinned
            arm = next(
                (
                    arm
                    for arm, candidate in (("champion", live.champion), ("challenger", live.challenger))
                    if candidate is not None and candidate.number == pinned.number
                ),
                "pinned",
            )
        else:
            arm = "champion"
            if live.challenger is not None:
                routing_key = (
                    record.get(live.champion.key_field)
                    if isinstance(record, dict) and live.champion.key_field
                    else None
                )
                if routing_key is None:
                    routing_key = request_id or decision_id  # no key field: not sticky (docs/server.md)
                arm = routing.choose_arm(live.name, live.salt, routing_key, live.deployment.challenger_percent)
            version = live.arm_version(arm)
        as_of = options.get("as_of") or _dt.datetime.now(_dt.UTC).date().isoformat()
        want_trace = options.get("trace", self.config.trace_by_default)
        enrichment = None
        if isinstance(record, dict) and self.plugins and self.plugins.enrichers:
            record, enrichment = self._enrich(live.name, version, record)
        log_entry: dict[str, Any] = {
            "decision_id": decision_id,
            "logged_at": _now_text(),
            "policy": live.name,
            "version": version.number,
            "content_hash": version.policy.content_hash,
            "arm": arm,
            "request_id": request_id,
            "key_id": key.id,
            "as_of": as_of,
            "lists": version.list_revisions,
            "enrichment": enrichment,
            "served_by": self.served_by,
        }
        engine_started = time.perf_counter()
        try:
            if not isinstance(record, dict):
                raise ApiError(
                    "invalid_request", "input must be a JSON object of the policy's input fields", {"field": "input"}
                )
            decision = version.policy.decide(
                record,
                as_of=as_of,
                lists=version.lists,
                ignore_extra=options.get("ignore_extra", False),
                trace=True,
                version=version.number,
            )
        except InputError as exc:
            engine_us = _elapsed_us(engine_started)
            error = from_input(exc)
            self._log(log_entry, record, version, "input_error", None, error, engine_us, started)
            error.details["decision_id"] = decision_id
            self._after(live, log_entry, record, version)  # listeners hear of refusals too; shadows may differ
            raise error from None
        except EvaluationError as exc:
            engine_us = _elapsed_us(engine_started)
            error = from_evaluation(exc)
            fallback = live.deployment.fallback
            if fallback is None:
                self._log(log_entry, record, version, "evaluation_error", None, error, engine_us, started)
                error.details["decision_id"] = decision_id
                self._after(live, log_entry, record, version)
                raise error from None
            outputs = {**fallback, "reasons": list(fallback.get("reasons", []))}
            body = self._response(log_entry, outputs, None, engine_us, started)
            body["degraded"] = True
            body["error"] = error.body()["error"]
            self._log(log_entry, record, version, "degraded", outputs, error, engine_us, started)
            self._after(live, log_entry, record, version)
            return Reply(200, body), log_entry
        engine_us = _elapsed_us(engine_started)
        outputs = decision.to_json()["outputs"]
        log_entry["engine"] = decision.engine
        log_entry["trace"] = decision.trace
        body = self._response(log_entry, outputs, decision.trace if want_trace else None, engine_us, started)
        self._log(log_entry, record, version, "decided", outputs, None, engine_us, started)
        categorical = [
            (name, str(value).lower() if isinstance(value, bool) else str(value))
            for name in version.categorical
            if (value := outputs.get(name)) is not None
        ]
        metrics.record_decision(live.name, engine_us, categorical)
        self._after(live, log_entry, record, version)
        return Reply(200, body), log_entry

    @staticmethod
    def _response(entry: Mapping[str, Any], outputs: Any, trace: Any, engine_us: int, started: float) -> dict[str, Any]:
        body = {
            "decision_id": entry["decision_id"],
            "policy": entry["policy"],
            "version": entry["version"],
            "arm": entry["arm"],
            "outputs": outputs,
            "lists": entry["lists"],
            "as_of": entry["as_of"],
            "timings": {"engine_us": engine_us, "total_us": _elapsed_us(started)},
        }
        if trace is not None:
            body["trace"] = trace
        return body

    def _log(
        self,
        entry: dict[str, Any],
        record: Any,
        version: LiveVersion,
        status: str,
        outputs: Any,
        error: ApiError | None,
        engine_us: int,
        started: float,
    ) -> None:
        """Append the decision to the spool: the response is not sent before this returns."""
        personal = version.personal
        enrichment = entry.get("enrichment")

        def keep(record: Any, enrichment: Any) -> None:
            if isinstance(record, dict):
                # Keep only what a replay needs and nobody can misuse: pii masked here, sealed apart.
                entry["record"] = sealing.masked(record, personal)
                entry["sealed_pii"] = self.sealer.seal(record, personal, entry["decision_id"])
            else:
                entry["record"] = {"_not_an_object": True}
                entry["sealed_pii"] = None
            if enrichment:
                entry["enrichment"] = sealing.masked(enrichment, personal)

        entry["status"] = status
        if outputs is None:
            entry["outputs"] = None
        else:
            entry["outputs"] = dict(outputs)
            entry["outputs"].pop("reasons", None)
        entry["reasons"] = None if outputs is None else outputs.get("reasons")
        entry["error"] = None if error is None else error.body()["error"]
        entry["engine_us"] = engine_us
        entry["total_us"] = _elapsed_us(started)
        try:
            try:
                keep(record, enrichment)
                self.spool.append(entry)
            except TypeError:  # a value orjson cannot write (an int past 64 bits, deep nesting): log it as it can
                keep(writable(record), writable(enrichment))
                self.spool.append(entry)
        except OSError as exc:  # fail closed: a decision that cannot be logged is not answered
            log.error("decision log: cannot write the spool: %s", exc.strerror)
            raise ApiError(
                "unavailable", "the decision could not be logged (the server's spool is not writable)"
            ) from None

    # ----------------------------------------------------------------------------- after the response

    def _after(self, live: LivePolicy, entry: Mapping[str, Any], record: Any, version: LiveVersion) -> None:
        """Shadows and listeners run on the background thread: never on the request's time."""
        if not live.shadows and not (self.plugins and self.plugins.listeners):
            return
        try:
            self.background.put_nowait((live, dict(entry), record))
        except queue.Full:
            metrics.SHADOW_DROPPED.inc()

    def _background_loop(self) -> None:
        while True:
            item = self.background.get()
            if item is None:
                return
            live, entry, record = item
            try:
                for shadow in live.shadows:
                    self._shadow(live, shadow, entry, record)
            except Exception as exc:  # a shadow must never take the loop down (nor its message quote an input)
                log.error(
                    "shadow evaluation failed: %s\n%s",
                    type(exc).__name__,
                    "".join(traceback.format_tb(exc.__traceback__)),
                )
            self._notify(entry)

    def _shadow(self, live: LivePolicy, shadow: LiveVersion, entry: Mapping[str, Any], record: Any) -> None:
        started = time.perf_counter()
        shadow_entry = {
            **{k: entry[k] for k in ("policy", "request_id", "key_id", "as_of", "enrichment", "served_by")},
            "decision_id": uuid7(),
            "logged_at": _now_text(),
            "version": shadow.number,
            "content_hash": shadow.policy.content_hash,
            "arm": "shadow",
            "shadow_of": entry["decision_id"],
            "lists": shadow.list_revisions,
        }
        try:
            decision = shadow.policy.decide(
                record, as_of=entry["as_of"], lists=shadow.lists, ignore_extra=True, trace=True
            )
        except InputError as exc:
            self._log(shadow_entry, record, shadow, "input_error", None, from_input(exc), _elapsed_us(started), started)
            return
        except EvaluationError as exc:
            self._log(
                shadow_entry,
                record,
                shadow,
                "evaluation_error",
                None,
                from_evaluation(exc),
                _elapsed_us(started),
                started,
            )
            return
        engine_us = _elapsed_us(started)
        shadow_entry["engine"], shadow_entry["trace"] = decision.engine, decision.trace
        self._log(shadow_entry, record, shadow, "decided", decision.to_json()["outputs"], None, engine_us, started)
        metrics.SHADOW_SECONDS.labels(live.name).observe(engine_us / 1e6)

    def _notify(self, entry: Mapping[str, Any]) -> None:
        """Each listener on its own: one that raises is counted and logged, and the others still run."""
        if not self.plugins:
            return
        event = {k: v for k, v in entry.items() if k != "sealed_pii"}
        for listener in self.plugins.listeners.values():
            try:
                listener.on_decision(event)
            except Exception as exc:
                metrics.LISTENER_FAILURES.labels(listener.name).inc()
                log.warning("listener %s failed: %s", listener.name, type(exc).__name__)

    def _enrich(
        self, policy: str, version: LiveVersion, record: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Fetch fields the caller did not send from the enrichers that supply them, each within its timeout."""
        inputs = {field.name for field in version.policy.inputs}
        enriched: dict[str, Any] = {}
        for enricher in self.plugins.enrichers.values() if self.plugins else ():
            if enricher.policies is not None and policy not in enricher.policies:
                continue
            wanted = [name for name in enricher.fields if name in inputs and record.get(name) is None]
            if not wanted:
                continue
            future = self.enricher_pool.submit(enricher.fetch, dict(record))
            try:
                values = future.result(timeout=enricher.timeout_seconds)
            except Exception as exc:  # a timeout or a failure leaves the fields missing, and is recorded
                metrics.ENRICHER_FAILURES.labels(enricher.name).inc()
                enriched[f"_failed:{enricher.name}"] = type(exc).__name__ or "timeout"
                continue
            for name in wanted:
                if isinstance(values, Mapping) and name in values:
                    enriched[name] = values[name]
        if not enriched:
            return record, None
        return {**record, **{k: v for k, v in enriched.items() if not k.startswith("_failed:")}}, enriched

    # ----------------------------------------------------------------------------- batches

    def decide_batch(self, key: ApiKey, policy: str, body: Any, started: float) -> Reply:
        self.require_scope(key, policy)
        live, pinned = self._target(policy, body.get("version") if isinstance(body, dict) else None)
        body = self._envelope(body, BATCH_ENVELOPE, "inputs")
        inputs = body["inputs"]
        if not isinstance(inputs, list):
            raise ApiError("invalid_request", "inputs must be a JSON array of input records", {"field": "inputs"})
        if len(inputs) > self.config.max_batch:
            raise ApiError(
                "body_too_large",
                f"a batch holds at most {self.config.max_batch} records, not {len(inputs)}",
                {"limit": self.config.max_batch},
            )
        results = []
        for position, record in enumerate(inputs):
            try:
                reply, _ = self._decide_one(key, live, pinned, record, body, time.perf_counter(), None)
                results.append(reply.body)
            except ApiError as exc:
                error = exc.body()
                error["index"] = position
                error["decision_id"] = exc.details.get("decision_id")
                results.append(error)
        return Reply(200, {"policy": policy, "results": results, "timings": {"total_us": _elapsed_us(started)}})

    # ----------------------------------------------------------------------------- the log, replay

    def logged(self, key: ApiKey, decision_id: str) -> LoggedDecision:
        try:
            decision_id = str(uuid.UUID(decision_id))  # the log's form: {…}, urn:uuid:, no dashes or capitals too
        except ValueError:
            raise ApiError("not_found", f"{decision_id!r} is not a decision id (a UUID)") from None
        try:
            logged = decision_log.get_decision(self.registry, decision_id)
        except RegistryError as exc:
            if exc.code == "not_found":
                raise ApiError(
                    "not_found",
                    f"decision {decision_id} is not in the log (a decision just made reaches it within a second)",
                ) from None
            raise from_registry(exc) from None
        if not key.may_call(logged.policy):
            raise ApiError("permission_denied", f"API key {key.id} may not read decisions of {logged.policy!r}")
        return logged

    def get_logged(self, key: ApiKey, decision_id: str) -> Reply:
        logged = self.logged(key, decision_id)
        body = logged.to_json()
        body.pop("sealed_pii", None)
        return Reply(200, body)

    def replay(self, key: ApiKey, decision_id: str, body: Any) -> Reply:
        body = body if body is not None else {}
        if not isinstance(body, dict) or set(body) - {"version"}:
            raise ApiError("invalid_request", 'the body is {} or {"version": N}')
        logged = self.logged(key, decision_id)
        if logged.record.get("_not_an_object"):
            raise ApiError("conflict", f"decision {decision_id} had no input object to replay")
        number = body.get("version", logged.version)
        _check_version(logged.policy, number)
        try:
            original = self.live.compiled_version(logged.policy, logged.version)
            target = original if number == logged.version else self.live.compiled_version(logged.policy, number)
        except RegistryError as exc:
            raise from_registry(exc) from None
        try:
            record = {**logged.record, **self.sealer.unseal(logged.sealed_pii, logged.decision_id)}
        except ConfigError as exc:
            raise ApiError("unavailable", str(exc)) from None
        lists = self._lists_as_logged(target, logged)
        try:
            after = target.decide(record, as_of=logged.as_of, lists=lists, trace=True, version=number)
            after_body: dict[str, Any] = {
                "version": number,
                "outputs": after.to_json()["outputs"],
                "trace": after.trace,
            }
        except (InputError, EvaluationError) as exc:
            after, after_body = None, {"version": number, "error": exc.to_json()}
        before_body = {
            "version": logged.version,
            "status": logged.status,
            "outputs": None if logged.outputs is None else {**logged.outputs, "reasons": logged.reasons or []},
            "trace": logged.trace,
            "error": logged.error,
        }
        comparison = None
        if after is not None and logged.outputs is not None:
            before = Decision(
                logged.policy,
                logged.outputs,
                logged.reasons or [],
                logged.trace,
                logged.content_hash or "",
                logged.engine or "",
                logged.version,
                original.info,
            )
            comparison = compiler.compare_decisions(before, after).to_json()
        return Reply(
            200,
            {
                "decision_id": decision_id,
                "policy": logged.policy,
                "as_of": logged.as_of,
                "lists": logged.lists,
                "enrichment": logged.enrichment,
                "original": before_body,
                "replayed": after_body,
                "difference": comparison,
            },
        )

    def _lists_as_logged(self, policy: compiler.Policy, logged: LoggedDecision) -> Any:
        prepared = {}
        for name, element_type in policy.store_lists.items():
            revision = logged.lists.get(name)
            if revision is None or str(revision).startswith("plugin:"):
                current = self.live.snapshot.policies.get(logged.policy)
                now = current.champion.list_revisions.get(name) if current else None
                if revision is None or now != revision:
                    raise ApiError(
                        "conflict",
                        f"list {name!r} at the revision this decision used ({revision}) can no longer be read",
                    )
                prepared[name] = current.champion.lists[name]
                continue
            try:
                values = registry_lists.member_values(self.registry, name, int(revision), at=logged.logged_at)
            except RegistryError as exc:
                raise from_registry(exc) from None
            prepared[name] = compiler.prepare_list(name, element_type, values, revision=str(revision))
        return policy.prepare_lists(prepared)

    # ----------------------------------------------------------------------------- policies, health

    def list_policies(self, key: ApiKey) -> Reply:
        snapshot = self.live.snapshot
        served = [
            self._policy_body(live, brief=True)
            for name, live in sorted(snapshot.policies.items())
            if key.may_call(name)
        ]
        return Reply(200, {"policies": served})

    def describe_policy(self, key: ApiKey, name: str) -> Reply:
        self.require_scope(key, name)
        live = self.live.snapshot.policies.get(name)
        if live is None:
            raise ApiError("not_found", f"policy {name!r} has no live deployment")
        return Reply(200, self._policy_body(live, brief=False))

    @staticmethod
    def _policy_body(live: LivePolicy, brief: bool) -> dict[str, Any]:
        deployment = live.deployment
        info = live.champion.policy.info
        body: dict[str, Any] = {
            "name": live.name,
            "kind": info.kind,
            "title": info.title,
            "deployment": {
                "id": deployment.id,
                "effective_at": deployment.effective_at.isoformat(),
                "champion": deployment.champion,
                "challenger": deployment.challenger,
                "challenger_percent": deployment.challenger_percent,
                "shadows": list(deployment.shadows),
                "fallback": deployment.fallback,
            },
        }
        if not brief:
            body["versions"] = [
                {
                    "version": version.number,
                    "content_hash": version.policy.content_hash,
                    "input_schema": version.policy.info.input_schema(),
                    "output_schema": version.policy.info.output_schema(),
                    "lists": version.list_revisions,
                }
                for version in (live.champion, live.challenger, *live.shadows)
                if version is not None
            ]
        return body

    def readiness(self) -> Reply:
        snapshot = self.live.snapshot
        try:
            with self.registry.read() as session:
                session.connection().exec_driver_sql("SELECT 1")
            database = "ok"
        except RegistryError as exc:
            database = exc.message
        ready = database == "ok" and snapshot.loaded and not snapshot.problems
        body = {
            "ready": ready,
            "database": database,
            "policies": {name: f"version {live.champion.number}" for name, live in snapshot.policies.items()},
            "problems": dict(snapshot.problems),
            "plugins": list(self.plugins.problems) if self.plugins else [],
            "decision_log_backlog": self.spool.backlog(),
            "engine": implementation.IMPLEMENTATION,
        }
        return Reply(200 if ready else 503, body)


_MAX_VERSION = (1 << 31) - 1  # the registry numbers versions with 32-bit integers


def _check_version(policy: str, version: Any) -> None:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ApiError("invalid_request", "version must be a positive whole number", {"field": "version"})
    if version > _MAX_VERSION:  # no such version, and a number the database may not even compare
        raise ApiError("not_found", f"version {version} of policy {policy!r} does not exist")


_INT_RANGE = (-(1 << 63), (1 << 64) - 1)  # what orjson writes
_MAX_DEPTH = 200  # orjson writes at most 255 levels of nesting; the JSON decoder accepts 1024


def writable(value: Any, depth: int = 0) -> Any:
    """`value` with what orjson cannot write replaced: an int outside 64 bits by its digits (a string), nesting
    deeper than `_MAX_DEPTH` by a note. The engine always sees what the caller sent (an input field refuses such
    values; an extra field may be ignored); this is only what the log and the idempotency fingerprint keep."""
    if isinstance(value, dict):
        if depth >= _MAX_DEPTH:
            return f"(nested deeper than {_MAX_DEPTH} levels)"
        return {name: writable(item, depth + 1) for name, item in value.items()}
    if isinstance(value, list):
        if depth >= _MAX_DEPTH:
            return f"(nested deeper than {_MAX_DEPTH} levels)"
        return [writable(item, depth + 1) for item in value]
    if isinstance(value, int) and not isinstance(value, bool) and not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
        return str(value)
    return value


def _elapsed_us(started: float) -> int:
    return int((time.perf_counter() - started) * 1_000_000)
