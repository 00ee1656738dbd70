"""The registry commands of `decide`: db, users, keys, draft, submit, approve, reject, activate, rollback,
versions, show, diff, lists, audit, policy and demo-data.

Input: command-line arguments (every command takes `--db URL`; governance commands take `--user NAME` and read
that user's password from `--password-stdin` or a prompt). Output: one line per fact on stdout (where a command
creates something — a version, a key, a change request — its id alone on the last line), errors on stderr, and
the exit codes of docs/cli.md. Each command is a thin call of one `registry` function.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from pathlib import Path
from typing import Any

import click
import orjson

from registry import Registry, RegistryError, audit, deployments, lists, migrate, policies, users
from registry.entities import User

# Exit codes of registry commands (docs/cli.md), after the policy ones of decide_cli.main.
EXIT_REFUSED, EXIT_DENIED, EXIT_UNAVAILABLE, EXIT_CHAIN_BROKEN = 4, 5, 6, 7
EXIT_FOR_CODE = {
    "invalid": EXIT_REFUSED,
    "refused": EXIT_REFUSED,
    "conflict": EXIT_REFUSED,
    "not_found": EXIT_REFUSED,
    "authentication_failed": EXIT_DENIED,
    "permission_denied": EXIT_DENIED,
    "unavailable": EXIT_UNAVAILABLE,
}


class RegistryExit(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _out(message: str) -> None:
    click.echo(message)


def _fail(exc: RegistryError) -> RegistryExit:
    click.echo(exc.render(), err=True)
    return RegistryExit(EXIT_FOR_CODE[exc.code])


class _Passwords:
    """Passwords from standard input, one per line, read only when asked for (or prompted for on a terminal)."""

    def __init__(self, from_stdin: bool) -> None:
        self.from_stdin = from_stdin

    def next(self, prompt: str, confirm: bool = False) -> str:
        if not self.from_stdin:
            return click.prompt(prompt, hide_input=True, confirmation_prompt=confirm)
        line = sys.stdin.readline()
        if not line:
            raise RegistryError("invalid", f"--password-stdin: no line on standard input for {prompt.lower()}")
        return line.rstrip("\r\n")


def _open(db: str | None) -> Registry:
    registry = Registry(db)
    migrate.require_current_schema(registry)
    return registry


def registry_command(governed: bool = True, needs_schema: bool = True) -> Callable:
    """Add --db (and for governed commands --user / --password-stdin), open the registry (refusing one whose schema
    is not current, unless `needs_schema` is False), sign the user in, and turn a RegistryError into its message
    and exit code."""

    def decorate(function: Callable) -> Callable:
        @wraps(function)
        def run(db: str | None, user: str | None = None, password_stdin: bool = False, **kwargs: Any) -> None:
            try:
                registry = Registry(db)
            except RegistryError as exc:
                raise _fail(exc) from None
            try:
                if needs_schema:
                    migrate.require_current_schema(registry)
                if governed:
                    passwords = _Passwords(password_stdin)
                    actor = _sign_in(registry, user, passwords)
                    function(registry=registry, actor=actor, passwords=passwords, **kwargs)
                else:
                    function(registry=registry, **kwargs)
            except RegistryError as exc:
                raise _fail(exc) from None
            finally:
                registry.dispose()

        run = click.option(
            "--db", metavar="URL", help="Registry database (default $DECIDE_DATABASE_URL, else decide.db)."
        )(run)
        if governed:
            run = click.option("--password-stdin", is_flag=True, help="Read the password(s) from standard input.")(run)
            run = click.option(
                "--user", "-u", metavar="NAME", envvar="DECIDE_USER", help="Who is acting ($DECIDE_USER)."
            )(run)
        return run

    return decorate


def _sign_in(registry: Registry, name: str | None, passwords: _Passwords) -> User:
    if not name:
        raise RegistryError("invalid", "say who is acting: --user NAME (or $DECIDE_USER)")
    return users.authenticate(registry, name, passwords.next(f"Password for {name}"))


def register(cli: click.Group) -> None:
    """Add the registry commands to the `decide` group."""
    for command in (db, users_group, keys, draft, submit, approve, reject, activate, rollback, versions, show, diff):
        cli.add_command(command)
    for command in (lists_group, audit_group, policy_group, demo_data):
        cli.add_command(command)


# ----------------------------------------------------------------------------- db


@click.group()
def db() -> None:
    """Create or upgrade the registry's schema."""


@db.command("upgrade")
@registry_command(governed=False, needs_schema=False)
def db_upgrade(registry: Registry) -> None:
    """Create the tables, or apply the migrations this version of Decide adds."""
    revision = migrate.upgrade(registry)
    _out(f"{registry.shown_url}: schema at revision {revision} (the newest)")


@db.command("current")
@registry_command(governed=False, needs_schema=False)
def db_current(registry: Registry) -> None:
    """Print the schema revision the database is at."""
    current, head = migrate.current_revision(registry), migrate.head_revision()
    if current is None:
        _out(f"{registry.shown_url}: no schema yet (run `decide db upgrade`)")
    else:
        _out(
            f"{registry.shown_url}: schema at revision {current}"
            + (" (the newest)" if current == head else f" (newest: {head})")
        )


@db.command("check")
@registry_command(governed=False, needs_schema=False)
def db_check(registry: Registry) -> None:
    """Compare the database's schema with the models (what `alembic check` does); exit 4 on drift."""
    problem = migrate.drift(registry)
    if problem:
        raise RegistryError("conflict", f"the schema differs from the models: {problem}")
    _out(f"{registry.shown_url}: the schema matches the models")


# ----------------------------------------------------------------------------- users and keys


@click.group("users")
def users_group() -> None:
    """Users and their roles."""


@users_group.command("add")
@click.argument("name")
@click.option("--role", "roles", multiple=True, required=True, help="A role (repeat for several).")
@click.option("--db", metavar="URL", help="Registry database (default $DECIDE_DATABASE_URL, else decide.db).")
@click.option("--user", "-u", "admin_name", metavar="NAME", envvar="DECIDE_USER", help="The admin adding the user.")
@click.option("--password-stdin", is_flag=True, help="Passwords from standard input: the admin's, then the new user's.")
def users_add(name: str, roles: tuple[str, ...], db: str | None, admin_name: str | None, password_stdin: bool) -> None:
    """Add user NAME. On an empty registry the first user needs no --user and must have the admin role."""
    try:
        registry = _open(db)
        try:
            passwords = _Passwords(password_stdin)
            admin = _sign_in(registry, admin_name, passwords) if admin_name else None
            password = passwords.next(f"New password for {name}", confirm=True)
            user = users.add_user(registry, admin, name, password, roles)
        finally:
            registry.dispose()
    except RegistryError as exc:
        raise _fail(exc) from None
    _out(f"added user {user.name} with roles {', '.join(user.roles)}")


@users_group.command("roles")
@click.argument("name")
@click.option("--add", "added", multiple=True, metavar="ROLE")
@click.option("--remove", "removed", multiple=True, metavar="ROLE")
@registry_command()
def users_roles(registry: Registry, actor: User, passwords: Any, name: str, added: tuple, removed: tuple) -> None:
    """Give or take roles."""
    user = users.change_roles(registry, actor, name, added, removed)
    _out(f"{user.name}: {', '.join(user.roles)}")


@users_group.command("list")
@registry_command(governed=False)
def users_list(registry: Registry) -> None:
    """The users and their roles."""
    for user in users.list_users(registry):
        _out(f"{user.name}\t{', '.join(user.roles)}")


@click.group()
def keys() -> None:
    """API keys for calling systems."""


@keys.command("create")
@click.option("--name", required=True, help="Which system uses the key.")
@click.option("--policy", "policy_names", multiple=True, required=True, help="A policy it may call (repeat).")
@registry_command()
def keys_create(registry: Registry, actor: User, passwords: Any, name: str, policy_names: tuple[str, ...]) -> None:
    """Create a key; it is printed once, alone on the last line, and never shown again."""
    key, secret = users.create_api_key(registry, actor, name, policy_names)
    _out(f"key {key.id} ({key.name}) for {', '.join(key.policies)}; store it now, it is not shown again:")
    _out(secret)


@keys.command("revoke")
@click.argument("key_id")
@registry_command()
def keys_revoke(registry: Registry, actor: User, passwords: Any, key_id: str) -> None:
    """Revoke a key: calls with it fail from now on."""
    key = users.revoke_api_key(registry, actor, key_id)
    _out(f"revoked key {key.id} ({key.name})")


@keys.command("list")
@registry_command(governed=False)
def keys_list(registry: Registry) -> None:
    """The keys (ids and scopes, never the secrets)."""
    for key in users.list_api_keys(registry):
        state = "active" if key.active else f"revoked {key.revoked_at:%Y-%m-%d %H:%M}"
        _out(f"{key.id}\t{key.name}\t{', '.join(key.policies)}\t{state}")


# ----------------------------------------------------------------------------- drafts, versions, votes


@click.group()
def draft() -> None:
    """Working copies of policies."""


@draft.command("save")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--tests", "tests_file", type=click.Path(dir_okay=False), help="Test cases (default NAME.tests.json beside FILE)."
)
@registry_command()
def draft_save(registry: Registry, actor: User, passwords: Any, file: str, tests_file: str | None) -> None:
    """Save FILE (and its NAME.tests.json) as the draft of the policy its header names."""
    path = Path(file)
    tests_path = Path(tests_file) if tests_file else path.with_name(path.name.removesuffix(".policy") + ".tests.json")
    source = _read_text(path)
    tests_json = _read_text(tests_path) if tests_path.exists() or tests_file else "[]"
    saved = policies.save_draft(registry, actor, source, tests_json)
    _out(
        f"saved the draft of {saved.policy}"
        + ("" if tests_path.exists() else f" (no {tests_path.name}: no test cases)")
    )


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise RegistryError("invalid", f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise RegistryError("invalid", f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise RegistryError("invalid", f"{path}: cannot be read ({exc.strerror})") from None


@click.command()
@click.argument("policy")
@click.option("--note", help="What changed and why.")
@registry_command()
def submit(registry: Registry, actor: User, passwords: Any, policy: str, note: str | None) -> None:
    """Submit POLICY's draft as its next version; prints the version number alone on the last line."""
    version = policies.submit(registry, actor, policy, note)
    for warning in version.warnings:
        location = warning.get("location") or {}
        _out(f"warning: line {location.get('line')}: {warning['message']}")
    _out(f"submitted {policy} version {version.number}; it needs {version.required_approvals} approval(s)")
    _out(str(version.number))


@click.command()
@click.argument("policy")
@click.argument("version", type=int)
@click.option("--comment", help="What you checked.")
@registry_command()
def approve(registry: Registry, actor: User, passwords: Any, policy: str, version: int, comment: str | None) -> None:
    """Approve a version (never your own)."""
    result = policies.approve(registry, actor, policy, version, comment)
    _out(
        f"{policy} version {version}: {result.state} ({len(result.approvers)} of {result.required_approvals} approvals)"
    )


@click.command()
@click.argument("policy")
@click.argument("version", type=int)
@click.option("--comment", required=True, help="Why (required).")
@registry_command()
def reject(registry: Registry, actor: User, passwords: Any, policy: str, version: int, comment: str) -> None:
    """Reject a version; it can no longer be approved (a new draft is needed)."""
    policies.reject(registry, actor, policy, version, comment)
    _out(f"{policy} version {version}: rejected")


def _parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise RegistryError(
            "invalid", f"--at {value!r} is not an ISO 8601 time (e.g. 2027-01-04T09:00:00+01:00)"
        ) from None


def _describe(deployment: Any) -> str:
    parts = [f"champion {deployment.champion}"]
    if deployment.challenger is not None:
        parts.append(f"challenger {deployment.challenger} at {deployment.challenger_percent}%")
    if deployment.shadows:
        parts.append("shadow " + ", ".join(map(str, deployment.shadows)))
    return "; ".join(parts)


@click.command()
@click.argument("policy")
@click.argument("version", type=int)
@click.option("--challenger", type=int, help="An approved version taking part of the traffic.")
@click.option("--percent", type=int, help="The challenger's share of traffic, 1–99.")
@click.option("--shadow", "shadows", type=int, multiple=True, help="A version evaluated and logged, never returned.")
@click.option("--at", "at_text", metavar="ISO-TIME", help="Take effect at this future time (with its time zone).")
@click.option("--note", help="Why.")
@click.option(
    "--fallback",
    "fallback_text",
    metavar="JSON",
    help='Outcome served, marked degraded, when evaluation fails (e.g. \'{"decision": "refer"}\').',
)
@registry_command()
def activate(
    registry: Registry,
    actor: User,
    passwords: Any,
    policy: str,
    version: int,
    challenger: int | None,
    percent: int | None,
    shadows: tuple[int, ...],
    at_text: str | None,
    note: str | None,
    fallback_text: str | None,
) -> None:
    """Make an approved version the champion of POLICY, now or at a time."""
    fallback = None
    if fallback_text is not None:
        try:
            fallback = orjson.loads(fallback_text)
        except orjson.JSONDecodeError as exc:
            raise RegistryError("invalid", f"--fallback is not valid JSON: {exc}") from None
    deployment = deployments.activate(
        registry, actor, policy, version, challenger, percent, shadows, _parse_time(at_text), note, fallback
    )
    when = "from now" if at_text is None else f"from {deployment.effective_at.isoformat()}"
    _out(f"{policy}: {_describe(deployment)}, {when} (deployment {deployment.id})")


@click.command()
@click.argument("policy")
@click.argument("version", type=int)
@click.option("--note", help="Why.")
@registry_command()
def rollback(registry: Registry, actor: User, passwords: Any, policy: str, version: int, note: str | None) -> None:
    """Make an earlier approved version the champion again, now."""
    deployment = deployments.rollback(registry, actor, policy, version, note)
    _out(f"{policy}: rolled back to {_describe(deployment)} (deployment {deployment.id})")


@click.command()
@click.argument("policy")
@registry_command(governed=False)
def versions(registry: Registry, policy: str) -> None:
    """Every version of POLICY: number, state, author, approvers, and when it was live."""
    history = deployments.history(registry, policy)
    now = audit.now()
    _out("version\tstate\tauthor\tapprovers\tlive")
    for version in policies.list_versions(registry, policy):
        _out(
            f"{version.number}\t{version.state}\t{version.author}\t{', '.join(version.approvers) or '-'}\t"
            f"{_live_periods(version.number, history, now) or '-'}"
        )


def _live_periods(number: int, history: list, now: datetime) -> str:
    periods = []
    for position, deployment in enumerate(history):
        if number not in deployment.versions:
            continue
        role = (
            "champion"
            if deployment.champion == number
            else ("challenger" if deployment.challenger == number else "shadow")
        )
        end = history[position + 1].effective_at if position + 1 < len(history) else None
        start = deployment.effective_at
        if start > now:
            periods.append(f"{role} from {start:%Y-%m-%d %H:%M} (scheduled)")
        else:
            until = "now" if end is None or end > now else f"{end:%Y-%m-%d %H:%M}"
            periods.append(f"{role} {start:%Y-%m-%d %H:%M} to {until}")
    return "; ".join(periods)


@click.command()
@click.argument("policy")
@click.argument("version", type=int, required=False)
@click.option("--draft", "show_draft", is_flag=True, help="Show the draft instead of a version.")
@registry_command(governed=False)
def show(registry: Registry, policy: str, version: int | None, show_draft: bool) -> None:
    """Print the source of a version of POLICY (the latest without VERSION)."""
    if show_draft:
        click.echo(policies.get_draft(registry, policy).source, nl=False)
    else:
        click.echo(policies.get_version(registry, policy, version).source, nl=False)


@click.command()
@click.argument("policy")
@click.argument("old", type=int)
@click.argument("new", type=int)
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text")
@registry_command(governed=False)
def diff(registry: Registry, policy: str, old: int, new: int, output_format: str) -> None:
    """The difference between two versions in policy terms: fields, lists, statements, items, reasons."""
    from compiler.diff import semantic_diff

    before, after = policies.get_version(registry, policy, old), policies.get_version(registry, policy, new)
    result = semantic_diff(before.source, after.source, before.ref, after.ref)
    if output_format == "json":
        _out(orjson.dumps(result.to_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        _out(f"{before.ref} -> {after.ref}")
        _out(result.render_text())


# ----------------------------------------------------------------------------- lists


@click.group("lists")
def lists_group() -> None:
    """Named lists: change requests (maker-checker), members at any revision."""


def _print_request(request: Any) -> None:
    _out(
        f"change request {request.id} on {request.list}: {request.operation} {len(request.entries)} entr"
        f"{'y' if len(request.entries) == 1 else 'ies'} ({request.status})"
    )
    for entry in request.entries[:20]:
        extra = [f"reason {entry['reason']!r}"] if entry.get("reason") else []
        extra += [f"expires {entry['expires_at']}"] if entry.get("expires_at") else []
        _out(
            f"  {'-' if request.operation == 'remove' else '+'} {entry['value']}"
            + (f" ({', '.join(extra)})" if extra else "")
        )
    if len(request.entries) > 20:
        _out(f"  … and {len(request.entries) - 20} more")


@lists_group.command("request-add")
@click.argument("list_name", metavar="LIST")
@click.argument("values", nargs=-1, required=True)
@click.option("--reason", help="Why these values are on the list.")
@click.option("--expires", metavar="DATE", help="They stop being members at the start of this day (UTC).")
@click.option("--note", help="A note for the approver.")
@registry_command()
def lists_request_add(
    registry: Registry, actor: User, passwords: Any, list_name: str, values: tuple, reason: Any, expires: Any, note: Any
) -> None:
    """Request adding VALUEs to LIST; prints the request id alone on the last line."""
    request = lists.request_add(registry, actor, list_name, list(values), reason, expires, note)
    _print_request(request)
    _out(str(request.id))


@lists_group.command("request-remove")
@click.argument("list_name", metavar="LIST")
@click.argument("values", nargs=-1, required=True)
@click.option("--note", help="A note for the approver.")
@registry_command()
def lists_request_remove(
    registry: Registry, actor: User, passwords: Any, list_name: str, values: tuple, note: Any
) -> None:
    """Request removing VALUEs from LIST; prints the request id alone on the last line."""
    request = lists.request_remove(registry, actor, list_name, list(values), note)
    _print_request(request)
    _out(str(request.id))


@lists_group.command("import")
@click.argument("list_name", metavar="LIST")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--note", help="A note for the approver.")
@registry_command()
def lists_import(registry: Registry, actor: User, passwords: Any, list_name: str, file: str, note: Any) -> None:
    """Request adding the entries of a CSV (columns value, reason, expires); shows what would change."""
    request = lists.request_import(registry, actor, list_name, _read_text(Path(file)), file, note)
    _print_request(request)
    _out(str(request.id))


@lists_group.command("approve")
@click.argument("request_id", metavar="REQUEST", type=int)
@click.option("--comment")
@registry_command()
def lists_approve(registry: Registry, actor: User, passwords: Any, request_id: int, comment: Any) -> None:
    """Approve a change request (not your own): the list gets its next revision."""
    request = lists.decide_change(registry, actor, request_id, "approve", comment)
    _out(f"approved change request {request.id}: {request.list} is at revision {request.revision}")
    for value in request.skipped:
        _out(f"  skipped {value}: no longer a member")


@lists_group.command("reject")
@click.argument("request_id", metavar="REQUEST", type=int)
@click.option("--comment")
@registry_command()
def lists_reject(registry: Registry, actor: User, passwords: Any, request_id: int, comment: Any) -> None:
    """Reject a change request (not your own): nothing changes."""
    request = lists.decide_change(registry, actor, request_id, "reject", comment)
    _out(f"rejected change request {request.id} on {request.list}")


@lists_group.command("show")
@click.argument("list_name", metavar="LIST")
@click.option("--revision", type=int, help="The members at this revision (default: the current one).")
@registry_command(governed=False)
def lists_show(registry: Registry, list_name: str, revision: int | None) -> None:
    """The members of LIST (masked where they are personal data)."""
    info, entries = lists.members(registry, list_name, revision)
    shown = info.revision if revision is None else revision
    _out(f"{info.name}: list of {info.element_type}, revision {shown} of {info.revision}, {len(entries)} member(s)")
    for entry in entries:
        extra = f"\t{entry.reason or ''}\t{entry.expires_at.isoformat() if entry.expires_at else ''}"
        _out(f"{entry.value}{extra.rstrip()}")


@lists_group.command("requests")
@click.argument("list_name", metavar="LIST", required=False)
@click.option("--status", type=click.Choice(["pending", "approved", "rejected"]))
@registry_command(governed=False)
def lists_requests(registry: Registry, list_name: str | None, status: str | None) -> None:
    """Change requests (pending ones first of all for approvers)."""
    for request in lists.change_requests(registry, list_name, status):
        _print_request(request)


# ----------------------------------------------------------------------------- audit, settings, demo


@click.group("audit")
def audit_group() -> None:
    """The tamper-evident audit trail."""


@audit_group.command("verify")
@registry_command(governed=False)
def audit_verify(registry: Registry) -> None:
    """Recompute the hash chain; report the first broken link (exit 7)."""
    with registry.read() as session:
        report = audit.verify(session)
    if report.ok:
        _out(f"audit chain verified: {report.events} events, every link intact")
        return
    click.echo(f"audit chain broken at event {report.broken_at}: {report.problem}", err=True)
    click.echo(f"({report.events} events before it verified)", err=True)
    raise RegistryExit(EXIT_CHAIN_BROKEN)


@audit_group.command("log")
@click.option(
    "--object", "obj", help="Only events on this object (e.g. policy:consumer_loan, list:blacklist, user:ana)."
)
@click.option("--since", help="Only events at or after this ISO date or time.")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text")
@registry_command(governed=False)
def audit_log(registry: Registry, obj: str | None, since: str | None, output_format: str) -> None:
    """Print the audit trail in sequence order."""
    since_at = audit.parse_instant(since, "--since")
    with registry.read() as session:
        found = audit.events(session, obj, since_at)
    for event in found:
        if output_format == "json":
            _out(orjson.dumps(event.to_json()).decode())
        else:
            details = orjson.dumps(event.details).decode()
            _out(f"{event.seq}\t{event.at:%Y-%m-%d %H:%M:%S}\t{event.actor}\t{event.action}\t{event.object}\t{details}")


@click.group("policy")
def policy_group() -> None:
    """Settings of a policy (admin)."""


@policy_group.command("approvals")
@click.argument("policy")
@click.argument("count", type=int)
@registry_command()
def policy_approvals(registry: Registry, actor: User, passwords: Any, policy: str, count: int) -> None:
    """Set how many distinct approvals POLICY's next versions need."""
    summary = policies.set_required_approvals(registry, actor, policy, count)
    _out(f"{summary.name}: new versions need {summary.required_approvals} approval(s)")


@policy_group.command("list")
@registry_command(governed=False)
def policy_list(registry: Registry) -> None:
    """The policies, their kinds and latest versions."""
    for summary in policies.list_policies(registry):
        live = deployments.current_deployment(registry, summary.name)
        _out(
            f"{summary.name}\t{summary.kind}\tlatest {summary.latest_version or '-'}\t"
            f"{_describe(live) if live else 'not active'}"
        )


@click.command("demo-data")
@registry_command(governed=False)
def demo_data(registry: Registry) -> None:
    """Seed an empty registry with the example policies (approved and live), demo users, a key and the blacklist."""
    from registry import demo

    seeded = demo.seed(registry)
    _out(f"seeded {registry.shown_url}: {', '.join(seeded.policies)} (each approved and active)")
    _out("demo users (passwords are shown once):")
    for name, password in seeded.passwords.items():
        _out(f"  {name}\t{password}\t{', '.join(seeded.roles[name])}")
    _out("API key for all demo policies (shown once):")
    _out(seeded.api_key)
