"""The registry commands as a user types them: the README's walkthrough run as written, the user and key
commands, list change requests, diff, show, demo data, and the exit codes of docs/cli.md."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from compiler.diff import semantic_diff
from decide_cli.main import main
from registry import Registry, audit, deployments, lists, policies, users
from tests.conftest import POLICIES, REPO

README = REPO / "README.md"


def readme_walkthrough() -> list[str]:
    text = README.read_text(encoding="utf-8")
    match = re.search(
        r"<!-- registry-walkthrough[^>]*-->\n```sh\n(.*?)```\n<!-- end registry-walkthrough -->", text, re.S
    )
    assert match, "the README's registry walkthrough block is missing"
    return [line for line in match.group(1).splitlines() if line.strip()]


def test_the_readme_walkthrough_works_as_written(tmp_path: Path) -> None:
    (tmp_path / "policies").symlink_to(POLICIES)
    environment = {key: value for key, value in os.environ.items() if not key.startswith("DECIDE_")}
    bin_dir = Path(sys.executable).parent
    environment["PATH"] = f"{bin_dir}{os.pathsep}{environment.get('PATH', '')}"
    outputs = []
    for line in readme_walkthrough():
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", line], cwd=tmp_path, env=environment, capture_output=True, text=True
        )
        assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
        outputs.append(done.stdout)
    assert outputs[4].splitlines()[-1] == "1"  # submit prints the version alone on its last line
    assert outputs[-1].startswith("audit chain verified: 6 events, every link intact")
    versions_table = outputs[-2].splitlines()
    assert versions_table[1].split("\t")[:4] == ["1", "approved", "ada", "bob"]
    assert versions_table[1].split("\t")[4].startswith("champion ")
    registry = Registry(f"sqlite:///{tmp_path / 'decide.db'}")
    assert deployments.current_deployment(registry, "credit_line").champion == 1
    registry.dispose()


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def run(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Ran]:
    """`decide ARGS --db URL` in this process (the README test runs real processes), standard input given."""

    def invoke(registry: Registry, args: list[str], stdin: str = "") -> Ran:
        capsys.readouterr()
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = main([*args, "--db", registry.url])
        captured = capsys.readouterr()
        return Ran(code, captured.out, captured.err)

    return invoke


@pytest.fixture
def cli_registry(registry: Registry, run: Callable[..., Ran]) -> Registry:
    assert (
        run(registry, ["users", "add", "root", "--role", "admin", "--password-stdin"], "root-password\n").returncode
        == 0
    )
    return registry


def test_first_user_must_be_admin_and_later_ones_need_an_admin(registry: Registry, run: Callable[..., Ran]) -> None:
    first = run(registry, ["users", "add", "eve", "--role", "author", "--password-stdin"], "eve-password\n")
    assert (first.returncode, first.stderr.strip()) == (
        4,
        "error: the first user of a registry must have the admin role",
    )
    assert (
        run(registry, ["users", "add", "root", "--role", "admin", "--password-stdin"], "root-password\n").returncode
        == 0
    )
    alone = run(registry, ["users", "add", "eve", "--role", "author", "--password-stdin"], "eve-password\n")
    assert (alone.returncode, alone.stderr.strip()) == (5, "error: only an admin may add users: give one with --user")
    wrong = run(
        registry,
        ["users", "add", "eve", "--role", "author", "--user", "root", "--password-stdin"],
        "nope-nope\neve-password\n",
    )
    assert (wrong.returncode, wrong.stderr.strip()) == (5, "error: wrong user name or password for 'root'")
    added = run(
        registry,
        ["users", "add", "eve", "--role", "author", "--user", "root", "--password-stdin"],
        "root-password\neve-password\n",
    )
    assert (added.returncode, added.stdout.strip()) == (0, "added user eve with roles author")
    with registry.read() as session:
        actions = [(event.action, event.actor) for event in audit.events(session)]
    assert actions == [("user.added", "root"), ("auth.failed", "root"), ("user.added", "root")]
    assert "Traceback" not in first.stderr + alone.stderr + wrong.stderr


def test_keys_are_shown_once_scoped_and_revocable(cli_registry: Registry, run: Callable[..., Ran]) -> None:
    registry = cli_registry
    admin = users.get_user(registry, "root")
    policy_author = users.add_user(registry, admin, "ann", "ann-password", ["author"])
    policies.save_draft(registry, policy_author, (POLICIES / "credit_line.policy").read_text(), "[]")
    created = run(
        registry,
        ["keys", "create", "--name", "los", "--policy", "credit_line", "--user", "root", "--password-stdin"],
        "root-password\n",
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.splitlines()[-1]
    assert re.fullmatch(r"dk_[0-9a-f]{12}\.[A-Za-z0-9_-]{43}", key)
    found = users.authenticate_api_key(registry, key)
    assert (found.policies, found.may_call("credit_line"), found.may_call("consumer_loan")) == (
        ("credit_line",),
        True,
        False,
    )
    listing = run(registry, ["keys", "list"])
    assert key.split(".")[1] not in listing.stdout and found.id in listing.stdout
    with registry.read() as session:
        assert key.split(".")[1] not in orjson.dumps([e.to_json() for e in audit.events(session)]).decode()
    revoked = run(registry, ["keys", "revoke", found.id, "--user", "root", "--password-stdin"], "root-password\n")
    assert revoked.returncode == 0
    with pytest.raises(Exception, match=f"API key {found.id} was revoked"):
        users.authenticate_api_key(registry, key)
    with pytest.raises(Exception, match="unknown API key"):
        users.authenticate_api_key(registry, key[:-2] + ("AA" if not key.endswith("AA") else "BB"))
    unknown = run(
        registry,
        ["keys", "create", "--name", "x", "--policy", "nope", "--user", "root", "--password-stdin"],
        "root-password\n",
    )
    assert (unknown.returncode, unknown.stderr.strip()) == (
        4,
        "error: policy 'nope' does not exist (a key can only name policies)",
    )


def test_lists_diff_and_show_from_the_command_line(
    cli_registry: Registry, run: Callable[..., Ran], tmp_path: Path
) -> None:
    registry = cli_registry
    admin = users.get_user(registry, "root")
    for name, roles in {"ann": ["author", "list_manager"], "bea": ["approver", "list_approver"]}.items():
        users.add_user(registry, admin, name, f"{name}-password", roles)
    ann = users.get_user(registry, "ann")
    source = (POLICIES / "consumer_loan.policy").read_text()
    tests = (POLICIES / "consumer_loan.tests.json").read_text()
    policies.save_draft(registry, ann, source, tests)
    policies.submit(registry, ann, "consumer_loan")
    changed = source.replace('title: "', 'title: "New ', 1)
    policies.save_draft(registry, ann, changed, tests)
    policies.submit(registry, ann, "consumer_loan")
    request = run(
        registry,
        ["lists", "request-add", "blacklist", "AB1234567", "--reason", "fraud", "--user", "ann", "--password-stdin"],
        "ann-password\n",
    )
    assert request.returncode == 0, request.stderr
    assert "AB1234567" not in request.stdout and "*****4567" in request.stdout
    request_id = request.stdout.splitlines()[-1]
    own = run(registry, ["lists", "approve", request_id, "--user", "ann", "--password-stdin"], "ann-password\n")
    assert own.returncode == 5 and "that needs the list_approver role" in own.stderr
    approved = run(registry, ["lists", "approve", request_id, "--user", "bea", "--password-stdin"], "bea-password\n")
    assert approved.stdout.strip() == f"approved change request {request_id}: blacklist is at revision 1"
    shown = run(registry, ["lists", "show", "blacklist"]).stdout.splitlines()
    assert shown == ["blacklist: list of string, revision 1 of 1, 1 member(s)", "*****4567\tfraud"]
    assert run(registry, ["lists", "show", "blacklist", "--revision", "0"]).stdout.splitlines()[1:] == []
    csv_file = tmp_path / "more.csv"
    csv_file.write_text("value,reason\nAB1234567,fraud\nCD7654321,mule account\n")
    imported = run(
        registry, ["lists", "import", "blacklist", str(csv_file), "--user", "ann", "--password-stdin"], "ann-password\n"
    )
    assert imported.stdout.splitlines() == [
        "change request 2 on blacklist: import 1 entry (pending)",
        "  + *****4321 (reason 'mule account')",
        "2",
    ]
    assert lists.member_values(registry, "blacklist") == ["AB1234567"]
    expected = semantic_diff(source, changed, "consumer_loan@1", "consumer_loan@2")
    as_json = run(registry, ["diff", "consumer_loan", "1", "2", "--format", "json"])
    assert orjson.loads(as_json.stdout) == expected.to_json()
    assert (
        run(registry, ["diff", "consumer_loan", "1", "2"]).stdout.splitlines()[1:]
        == expected.render_text().splitlines()
    )
    assert run(registry, ["show", "consumer_loan", "1"]).stdout == source
    missing = run(registry, ["show", "consumer_loan", "9"])
    assert (missing.returncode, missing.stderr.strip()) == (
        4,
        "error: version 9 of policy 'consumer_loan' does not exist",
    )


def test_demo_data_seeds_four_live_policies_approved_by_someone_else(
    registry: Registry, run: Callable[..., Ran]
) -> None:
    seeded = run(registry, ["demo-data"])
    assert seeded.returncode == 0, seeded.stderr
    key = seeded.stdout.splitlines()[-1]
    expected = sorted(path.stem for path in POLICIES.glob("*.policy"))
    assert sorted(summary.name for summary in policies.list_policies(registry)) == expected
    for name in expected:
        version = policies.get_version(registry, name, 1)
        assert version.state == "approved" and version.author not in version.approvers
        assert deployments.current_deployment(registry, name).champion == 1
    assert users.authenticate_api_key(registry, key).policies == tuple(expected)
    blacklist = (POLICIES / "examples" / "blacklist.txt").read_text().split()
    assert lists.member_values(registry, "blacklist") == sorted(blacklist)
    for line in seeded.stdout.splitlines():
        if line.startswith("  "):
            name, password = line.split("\t")[:2]
            assert users.authenticate(registry, name.strip(), password).name == name.strip()
    with registry.read() as session:
        assert audit.verify(session).ok
    again = run(registry, ["demo-data"])
    assert (again.returncode, again.stderr.strip()) == (
        4,
        "error: the registry already has users: demo data is only for an empty database",
    )


def test_audit_log_filters_by_object_and_time(cli_registry: Registry, run: Callable[..., Ran]) -> None:
    registry = cli_registry
    admin = users.get_user(registry, "root")
    ann = users.add_user(registry, admin, "ann", "ann-password", ["author"])
    policies.save_draft(
        registry, ann, (POLICIES / "credit_line.policy").read_text(), (POLICIES / "credit_line.tests.json").read_text()
    )
    policies.submit(registry, ann, "credit_line")
    every = run(registry, ["audit", "log", "--format", "json"]).stdout.splitlines()
    assert [orjson.loads(line)["action"] for line in every] == [
        "user.added",
        "user.added",
        "draft.saved",
        "version.submitted",
    ]
    on_policy = run(registry, ["audit", "log", "--object", "policy:credit_line"]).stdout.splitlines()
    assert [line.split("\t")[3:5] for line in on_policy] == [
        ["draft.saved", "policy:credit_line"],
        ["version.submitted", "policy:credit_line@1"],
    ]
    third_at = orjson.loads(every[2])["at"]
    since = run(registry, ["audit", "log", "--since", third_at, "--format", "json"]).stdout.splitlines()
    assert [orjson.loads(line)["seq"] for line in since] == [3, 4]
    assert run(registry, ["audit", "log", "--since", "2999-01-01"]).stdout == ""
    bad = run(registry, ["audit", "log", "--since", "yesterday"])
    assert (bad.returncode, bad.stderr.strip()) == (
        4,
        "error: --since: 'yesterday' is not a time (YYYY-MM-DD or ISO 8601)",
    )


def test_refusals_print_every_reason_and_never_a_traceback(
    cli_registry: Registry, run: Callable[..., Ran], tmp_path: Path
) -> None:
    registry = cli_registry
    users.add_user(registry, users.get_user(registry, "root"), "ann", "ann-password", ["author"])
    login = ["--user", "ann", "--password-stdin"]
    missing = run(registry, ["draft", "save", str(tmp_path / "nope.policy"), *login], "ann-password\n")
    assert (missing.returncode, missing.stderr.strip()) == (4, f"error: {tmp_path / 'nope.policy'}: no such file")
    policy = tmp_path / "credit_line.policy"
    policy.write_text((POLICIES / "credit_line.policy").read_text().replace("output:", "output:\n    oops: int", 1))
    saved = run(registry, ["draft", "save", str(policy), *login], "ann-password\n")
    assert saved.stdout.strip() == "saved the draft of credit_line (no credit_line.tests.json: no test cases)"
    refused = run(registry, ["submit", "credit_line", *login], "ann-password\n")
    lines = refused.stderr.splitlines()
    assert refused.returncode == 4 and lines[0] == "error: version not submitted: 2 problem(s) in the draft"
    assert lines[1].startswith("  - line ") and "oops" in lines[1]
    assert lines[2] == "  - the draft has no test cases: every version needs at least one"
    nobody = run(registry, ["submit", "credit_line"], "")
    assert (nobody.returncode, nobody.stderr.strip()) == (4, "error: say who is acting: --user NAME (or $DECIDE_USER)")
    no_password = run(registry, ["submit", "credit_line", *login], "")
    assert no_password.returncode == 4 and "no line on standard input" in no_password.stderr
    for result in (missing, saved, refused, nobody, no_password):
        assert "Traceback" not in result.stderr
