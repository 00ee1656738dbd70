"""Submitting (refused with every reason; what a version stores) and governed lists (membership per revision,
expiry, CSV import, masking, element types), against answers worked out by hand from the rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from compiler import COMPILER_VERSION, compile_source
from registry import Registry, RegistryError, lists, policies
from registry.entities import User
from tests.conftest import POLICIES

CONSUMER = (POLICIES / "consumer_loan.policy").read_text()
CONSUMER_TESTS = (POLICIES / "consumer_loan.tests.json").read_text()
CREDIT = (POLICIES / "credit_line.policy").read_text()
CREDIT_TESTS = (POLICIES / "credit_line.tests.json").read_text()


def refusal(registry: Registry, author: User, source: str, tests: str, policy: str = "credit_line") -> RegistryError:
    policies.save_draft(registry, author, source, tests)
    with pytest.raises(RegistryError) as caught:
        policies.submit(registry, author, policy)
    assert caught.value.code == "refused"
    return caught.value


def test_submit_lists_every_check_error_with_its_line(registry: Registry, people: dict[str, User]) -> None:
    broken = CREDIT.replace("output:", "output:\n    extra: nonsense = 1", 1)
    broken_line = broken.splitlines().index("    extra: nonsense = 1") + 1
    error = refusal(registry, people["author"], broken, CREDIT_TESTS)
    assert error.message.startswith("version not submitted:")
    assert any(detail.startswith(f"line {broken_line}, column ") and "error" in detail for detail in error.details)
    assert policies.list_versions(registry, "credit_line") == []


def test_submit_needs_test_cases_and_every_one_passing(registry: Registry, people: dict[str, User]) -> None:
    error = refusal(registry, people["author"], CREDIT, "[]")
    assert error.details == ["the draft has no test cases: every version needs at least one"]
    cases = orjson.loads(CREDIT_TESTS)
    first = cases[0]
    output, wanted = next((key, value) for key, value in first["expect"].items() if key not in ("trace", "error"))
    first["expect"][output] = "surely-not-this" if isinstance(wanted, str) else -12345
    error = refusal(registry, people["author"], CREDIT, orjson.dumps(cases).decode())
    assert len(error.details) == 1
    assert error.details[0].startswith(f'test case "{first["name"]}" fails: {output}: expected ')
    error = refusal(registry, people["author"], CREDIT, '[{"name": "x"}]')
    assert error.details == [
        'test cases: case "x": "input" is missing',
        'test cases: case "x": "expect" must be an object naming at least one output, reasons, trace or error',
    ]


def test_a_version_stores_what_was_submitted(registry: Registry, people: dict[str, User]) -> None:
    policies.save_draft(registry, people["author"], CREDIT, CREDIT_TESTS)
    version = policies.submit(registry, people["author"], "credit_line", note="first cut")
    compiled = compile_source(CREDIT, "credit_line.policy")
    assert (version.number, version.state, version.author, version.parent) == (1, "submitted", "author", None)
    assert version.source == CREDIT and version.tests == orjson.loads(CREDIT_TESTS)
    assert version.content_hash == compiled.content_hash and version.compiler_version == COMPILER_VERSION
    assert version.change_note == "first cut" and version.diff is None
    assert [w["code"] for w in version.warnings] == [w.code for w in compiled.warnings]
    # The next version records its parent and the semantic diff against it.
    changed = CREDIT.replace('title: "', 'title: "Revised ', 1)
    policies.save_draft(registry, people["author2"], changed, CREDIT_TESTS)
    second = policies.submit(registry, people["author2"], "credit_line")
    assert (second.number, second.parent, second.author) == (2, 1, "author2")
    assert [change["kind"] for change in second.diff["changes"]] == ["header_changed"]
    assert policies.get_version(registry, "credit_line", 1).source == CREDIT


def test_a_declared_list_is_created_empty_and_must_keep_its_type(registry: Registry, people: dict[str, User]) -> None:
    policies.save_draft(registry, people["author"], CONSUMER, CONSUMER_TESTS)
    policies.submit(registry, people["author"], "consumer_loan")
    info, entries = lists.members(registry, "blacklist")
    assert (info.element_type, info.revision, info.personal, entries) == ("string", 0, True, [])
    other = (
        'policy other_loan:\n    title: "Codes"\n    kind: approval\n\ninput:\n    code: int\n\n'
        'output:\n    decision: string = "approve"\n\nlist blacklist: int\n\nrules knockouts (first):\n'
        '    rule K01 "Listed":\n        when code in blacklist\n        then decision = "decline", reason "K01"\n'
    )
    other_tests = orjson.dumps(
        [{"name": "listed", "input": {"code": 1}, "lists": {"blacklist": [1]}, "expect": {"decision": "decline"}}]
    ).decode()
    error = refusal(registry, people["author"], other, other_tests, "other_loan")
    assert error.details == [
        "list blacklist is declared as a list of int, but the registry's list blacklist holds string values"
    ]


@pytest.fixture
def blacklist(registry: Registry, people: dict[str, User]) -> Registry:
    policies.save_draft(registry, people["author"], CONSUMER, CONSUMER_TESTS)
    policies.submit(registry, people["author"], "consumer_loan")
    return registry


def _approve(registry: Registry, people: dict[str, User], request_id: int) -> int:
    return lists.decide_change(registry, people["list_approver"], request_id, "approve").revision


def test_membership_at_every_revision(blacklist: Registry, people: dict[str, User]) -> None:
    maker = people["list_manager"]
    r1 = _approve(blacklist, people, lists.request_add(blacklist, maker, "blacklist", ["AA0000001", "BB0000002"]).id)
    pending = lists.request_add(blacklist, maker, "blacklist", ["CC0000003"])
    r2 = _approve(blacklist, people, lists.request_remove(blacklist, maker, "blacklist", ["AA0000001"]).id)
    lists.decide_change(blacklist, people["list_approver"], pending.id, "reject", "not proven")
    r3 = _approve(blacklist, people, lists.request_add(blacklist, maker, "blacklist", ["AA0000001"], reason="again").id)
    assert (r1, r2, r3) == (1, 2, 3)
    expected = {0: [], 1: ["AA0000001", "BB0000002"], 2: ["BB0000002"], 3: ["AA0000001", "BB0000002"]}
    for revision, values in expected.items():
        assert lists.member_values(blacklist, "blacklist", revision) == values, revision
    _, shown = lists.members(blacklist, "blacklist")
    assert [entry.value for entry in shown] == ["*****0001", "*****0002"]
    assert [entry.reason for entry in shown] == ["again", None]
    with pytest.raises(RegistryError) as caught:
        lists.members(blacklist, "blacklist", revision=4)
    assert caught.value.message == "revision 4 of list 'blacklist' (its revisions are 0 to 3) does not exist"


def test_expired_entries_stop_being_members(blacklist: Registry, people: dict[str, User]) -> None:
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date()
    request = lists.request_add(
        blacklist, people["list_manager"], "blacklist", ["TEMP00001"], expires=tomorrow.isoformat()
    )
    _approve(blacklist, people, request.id)
    assert lists.member_values(blacklist, "blacklist") == ["TEMP00001"]
    day_after = datetime.combine(tomorrow, datetime.min.time(), UTC)
    assert lists.member_values(blacklist, "blacklist", at=day_after - timedelta(seconds=1)) == ["TEMP00001"]
    assert lists.member_values(blacklist, "blacklist", at=day_after) == []


def test_removing_a_value_that_is_not_a_member_is_refused_masked(blacklist: Registry, people: dict[str, User]) -> None:
    with pytest.raises(RegistryError) as caught:
        lists.request_remove(blacklist, people["list_manager"], "blacklist", ["ZZ9876543"])
    assert caught.value.message == "*****6543 is not a member of list blacklist"


def test_csv_import_shows_what_changes(blacklist: Registry, people: dict[str, User], tmp_path: Path) -> None:
    _approve(blacklist, people, lists.request_add(blacklist, people["list_manager"], "blacklist", ["AA0000001"]).id)
    csv_file = tmp_path / "fraud.csv"
    csv_file.write_text("value,reason,expires\nAA0000001,,\nBB0000002,confirmed fraud,\nCC0000003,,2099-01-01\n")
    request = lists.request_import(blacklist, people["list_manager"], "blacklist", csv_file.read_text(), str(csv_file))
    assert [entry["value"] for entry in request.entries] == ["*****0002", "*****0003"]  # AA… is already there
    _approve(blacklist, people, request.id)
    assert lists.member_values(blacklist, "blacklist") == ["AA0000001", "BB0000002", "CC0000003"]
    bad = tmp_path / "bad.csv"
    bad.write_text("value,expires\nDD0000004,next week\n")
    with pytest.raises(RegistryError) as caught:
        lists.request_import(blacklist, people["list_manager"], "blacklist", bad.read_text(), str(bad))
    assert caught.value.message == f"{bad}:2: 'next week' is not an expiry date (YYYY-MM-DD or ISO 8601)"
    (tmp_path / "header.csv").write_text("id\nX\n")
    with pytest.raises(RegistryError) as caught:
        lists.request_import(blacklist, people["list_manager"], "blacklist", "id\nX\n")
    assert "the first line must be a header with a `value` column" in caught.value.message


@pytest.mark.parametrize(
    ("element_type", "given", "stored"),
    [
        ("int", " 42 ", "42"),
        ("int", "+7", "7"),
        ("number", "2", "2.0"),
        ("number", "1e3", "1000.0"),
        ("date", "2026-02-03", "2026-02-03"),
        ("string", " a ", " a "),
    ],
)
def test_values_are_stored_in_one_canonical_form(element_type: str, given: str, stored: str) -> None:
    assert lists.canonical_value(element_type, given) == stored


@pytest.mark.parametrize(
    ("element_type", "given", "message"),
    [
        ("int", "4.5", "'4.5' is not a whole number"),
        ("number", "nan", "'nan' is not a finite number"),
        ("number", "1e999", "'1e999' is not a finite number"),
        ("date", "2026-02-30", "'2026-02-30' is not a date (YYYY-MM-DD)"),
        ("string", "", "a string member must have 1 to 400 characters"),
    ],
)
def test_bad_values_are_refused_saying_what(element_type: str, given: str, message: str) -> None:
    with pytest.raises(RegistryError) as caught:
        lists.canonical_value(element_type, given)
    assert caught.value.message == message


def test_a_bad_value_of_a_personal_list_is_quoted_masked() -> None:
    with pytest.raises(RegistryError) as caught:
        lists.canonical_value("int", "123-45-6789", "value 1", personal=True)
    assert caught.value.message == "value 1: '*******6789' is not a whole number"


def test_every_list_of_a_policy_with_personal_inputs_is_masked(blacklist: Registry) -> None:
    # consumer_loan compares national_id (pii) with blacklist; lists reached through a let are covered the same way.
    assert lists.members(blacklist, "blacklist")[0].personal
