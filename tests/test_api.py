"""The typed API: PolicyInfo and its JSON Schemas, Decision, and compiled bytes that carry the policy, not a path.

Expected values are read off the policy files themselves (the line a rule is written on, the constraint as
written) or checked by an independent JSON Schema validator, never produced by the code under test alone.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import jsonschema
import pytest

from compiler import (
    CompiledPolicy,
    Decision,
    EvaluationError,
    InputError,
    PolicyError,
    PolicyInfo,
    compile_file,
    compile_source,
    prepare_list,
)
from compiler.testcases import load_cases
from tests.conftest import POLICIES

LOAN = POLICIES / "consumer_loan.policy"
EXAMPLE = json.loads((POLICIES / "examples" / "consumer_loan.json").read_text(encoding="utf-8"))
EXAMPLE_POLICIES = sorted(POLICIES.glob("*.policy"))


def _line_of(path: Path, text: str) -> int:
    """The 1-based line of the first line of `path` that contains `text`."""
    for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} not in {path}")


@pytest.fixture(scope="module")
def loan():
    return compile_file(LOAN)


def test_policy_info_describes_the_header_fields_and_lists(loan) -> None:
    info = loan.info
    assert (info.name, info.kind, info.title, info.owner) == (
        "consumer_loan",
        "approval",
        "Consumer loan origination",
        "Retail credit risk",
    )
    assert info.description.startswith("Knockouts, bureau scorecard")
    national_id = next(field for field in info.inputs if field.name == "national_id")
    assert (national_id.type, national_id.optional, national_id.pii) == ("string", True, True)
    age = next(field for field in info.inputs if field.name == "age")
    assert age.allowed == {"low": 0, "high": 120, "low_closed": True, "high_closed": True}
    decision = next(field for field in info.outputs if field.name == "decision")
    assert decision.allowed == {"values": ["approve", "refer", "decline"]} and decision.default == "refer"
    assert info.store_lists == {"blacklist": "string"}
    assert info.pii_fields == ("national_id",)
    assert age.span.line == _line_of(LOAN, "    age: int in [0..120]")


def test_statements_and_their_items_point_at_their_lines(loan) -> None:
    info = loan.info
    knockouts = info.statement("knockouts")
    assert knockouts.kind == "rules first"
    assert knockouts.span.line == _line_of(LOAN, "rules knockouts (first):")
    assert [item.label for item in knockouts.items] == ["K01", "K02", "K03", "K04"]
    assert knockouts.item("K03").span.line == _line_of(LOAN, 'rule K03 "Repeated serious delinquency')
    assert knockouts.item("K03").title == "Repeated serious delinquency (3+ times 90 days late)"
    band = info.statement("band")
    assert band.kind == "table first" and band.item("2").span.line == _line_of(LOAN, "| >= 630     | -  ")
    score = info.statement("risk_score")
    assert score.kind == "scorecard" and score.item("2.3").span.line == _line_of(LOAN, "[50%..90%) => -25")
    pricing = info.statement("pricing")
    assert pricing.kind == "tree" and pricing.item("2.2").span.line == _line_of(LOAN, "apr = 14.9%") - 1


def test_policy_info_round_trips_through_json(loan) -> None:
    assert PolicyInfo.from_json(json.loads(json.dumps(loan.info.to_json()))) == loan.info


@pytest.mark.parametrize("path", EXAMPLE_POLICIES, ids=[p.stem for p in EXAMPLE_POLICIES])
def test_the_input_schema_accepts_what_the_validator_accepts(path: Path) -> None:
    policy = compile_file(path)
    schema = policy.info.input_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    output_validator = jsonschema.Draft202012Validator(policy.info.output_schema())
    lists = {name: [] for name in policy.store_lists}
    checked = 0
    for case in load_cases(path.with_suffix(".tests.json")):
        try:
            policy.compiled.validator.validate(case["input"])
        except InputError:
            continue
        assert not list(validator.iter_errors(case["input"])), case["name"]
        try:
            result = policy.evaluate(case["input"], as_of="2026-11-21", lists=case.get("lists") or lists)
        except EvaluationError:
            continue
        assert not list(output_validator.iter_errors(result["outputs"])), case["name"]
        checked += 1
    assert checked >= 10


@pytest.mark.parametrize(
    ("change", "value"),
    [
        ("age", "59"),  # a string for an int
        ("age", 121),  # outside [0..120]
        ("age", 30.5),  # not a whole number
        ("unknown_field", 1),  # not declared
        ("national_id", 7),  # a number for a string
    ],
)
def test_the_input_schema_rejects_what_the_validator_rejects(loan, change: str, value) -> None:
    record = {**EXAMPLE, change: value}
    with pytest.raises(InputError):
        loan.compiled.validator.validate(record)
    assert list(jsonschema.Draft202012Validator(loan.info.input_schema()).iter_errors(record))


def test_schemas_mark_pii_and_key_fields() -> None:
    policy = compile_source(
        'policy p:\n    title: "t"\n\ninput:\n    id: string key\n    name: string pii optional\n\n'
        "output:\n    ok: bool = false\n\n"
        'rules r (first):\n    rule R1:\n        when id == "a"\n        then ok = true\n',
        "p.policy",
    )
    properties = policy.info.input_schema()["properties"]
    assert properties["id"] == {"type": "string", "x-key": True}
    assert properties["name"] == {"type": ["string", "null"], "x-pii": True}
    assert policy.info.key_field == "id"


def test_a_decision_is_the_result_object_with_its_provenance(loan) -> None:
    lists = {"blacklist": []}
    result = loan.evaluate(EXAMPLE, as_of="2026-11-21", lists=lists, version=3)
    decision = loan.decide(EXAMPLE, as_of="2026-11-21", lists=lists, version=3)
    assert isinstance(decision, Decision)
    assert decision.to_json() == result
    assert decision.content_hash == loan.content_hash and decision.version == 3
    assert decision.reasons == result["outputs"]["reasons"]
    assert "reasons" not in decision.outputs
    reference = loan.decide(EXAMPLE, as_of="2026-11-21", lists=lists, engine="reference")
    assert reference.engine == "reference" and reference.to_json() == {
        k: v for k, v in result.items() if k != "version"
    }


def test_trace_records_name_what_fired_at_its_line(loan) -> None:
    declined = {**EXAMPLE, "NumberOfTimes90DaysLate": 4}
    decision = loan.decide(declined, as_of="2026-11-21", lists={"blacklist": []})
    records = {record.statement: record for record in decision.trace_records}
    knockout = records["knockouts"]
    assert knockout.kind == "rules first" and knockout.text == "knockouts:K03"
    assert [(hit.label, hit.span.line) for hit in knockout.fired] == [
        ("K03", _line_of(LOAN, 'rule K03 "Repeated serious delinquency'))
    ]
    assert knockout.span.line == _line_of(LOAN, "rules knockouts (first):")


def test_the_same_source_gives_the_same_bytes_wherever_it_was_compiled(tmp_path: Path) -> None:
    elsewhere = tmp_path / "deep" / "folder" / "consumer_loan.policy"
    elsewhere.parent.mkdir(parents=True)
    shutil.copy(LOAN, elsewhere)
    here, there = compile_file(LOAN).compiled.to_bytes(), compile_file(elsewhere).compiled.to_bytes()
    assert here == there
    assert str(tmp_path).encode() not in there and b"policies/" not in there


def test_compiled_bytes_carry_the_policy_info_and_source(loan) -> None:
    loaded = CompiledPolicy.from_bytes(loan.compiled.to_bytes())
    assert loaded.source == LOAN.read_text(encoding="utf-8")
    assert loaded.info == loan.compiled.info
    assert loaded.info.name == "consumer_loan" and loaded.info.statement("knockouts").item("K01") is not None
    assert loaded.info.statement("knockouts").span.file == "consumer_loan.policy"
    assert pickle.loads(pickle.dumps(loaded)).info == loaded.info


def test_evaluation_errors_never_show_the_path_the_policy_was_compiled_from(tmp_path: Path) -> None:
    path = tmp_path / "secret" / "server" / "div.policy"
    path.parent.mkdir(parents=True)
    path.write_text(
        'policy div:\n    title: "t"\n\ninput:\n    x: int\n\noutput:\n    r: number = 0\n\n'
        "rules calc (first):\n    rule R1:\n        when true\n        then r = 10 / x\n",
        encoding="utf-8",
    )
    policy = compile_file(path)
    for engine in ("compiled", "reference"):
        with pytest.raises(EvaluationError) as error:
            policy.evaluate({"x": 0}, as_of="2026-11-21", engine=engine)
        assert str(error.value).startswith("div.policy:13:")
        assert "secret" not in str(error.value) and "secret" not in json.dumps(error.value.to_json())


# ----------------------------------------------------------------------------- named lists


def test_a_prepared_list_is_shared_by_every_policy_that_declares_it(loan) -> None:
    blacklist = prepare_list("blacklist", "string", (f"ID{n:06d}" for n in range(100_000)), revision="r7")
    prepared = loan.prepare_lists({"blacklist": blacklist})
    assert prepared["blacklist"] is blacklist.members  # not converted again
    assert prepared.revisions == {"blacklist": "r7"}
    assert loan.prepare_lists(prepared) is prepared
    listed = loan.evaluate({**EXAMPLE, "national_id": "ID042042"}, as_of="2026-11-21", lists=prepared)
    unlisted = loan.evaluate({**EXAMPLE, "national_id": "ID999999X"}, as_of="2026-11-21", lists=prepared)
    assert listed["outputs"]["decision"] == "decline" and listed["outputs"]["reasons"] == ["K01"]
    assert unlisted["outputs"]["decision"] == "approve"


def test_prepared_lists_of_another_policy_are_refused(loan) -> None:
    other = compile_source(
        'policy other:\n    title: "t"\n\ninput:\n    x: int\n\noutput:\n    ok: bool = false\n\n'
        "list vips: int\n\nrules r (first):\n    rule R1:\n        when x in vips\n        then ok = true\n",
        "other.policy",
    )
    with pytest.raises(EvaluationError) as error:
        loan.evaluate(EXAMPLE, as_of="2026-11-21", lists=other.prepare_lists({"vips": [1]}))
    assert error.value.code == "lists_for_another_policy"
    with pytest.raises(InputError):
        prepare_list("vips", "int", ["1.5"])
    with pytest.raises(InputError):
        loan.prepare_lists({"blacklist": prepare_list("vips", "int", [1])})


# ----------------------------------------------------------------------------- errors as JSON


def test_errors_as_json_have_codes_fields_and_spans(loan) -> None:
    with pytest.raises(InputError) as input_error:
        loan.evaluate({**EXAMPLE, "age": "old", "DebtRatio": -1}, as_of="2026-11-21", lists={"blacklist": []})
    body = input_error.value.to_json()
    assert body["kind"] == "input"
    assert {(e["field"], e["code"]) for e in body["errors"]} == {("age", "wrong_type"), ("DebtRatio", "not_allowed")}
    with pytest.raises(EvaluationError) as missing:
        loan.evaluate(EXAMPLE, as_of="2026-11-21")
    assert missing.value.to_json()["code"] == "list_not_supplied"
    with pytest.raises(PolicyError) as policy_error:
        compile_source('policy p:\n    title: "t"\n\ninput:\n    x: int\n\noutput:\n    y: int = z\n', "p.policy")
    diagnostics = policy_error.value.to_json()["diagnostics"]
    assert policy_error.value.to_json()["kind"] == "policy"
    assert all({"severity", "code", "message", "location"} <= set(d) for d in diagnostics)
    assert any(d["location"]["line"] == 8 for d in diagnostics)


@pytest.mark.parametrize(
    ("record", "code", "output"),
    [
        ({"id": "A1", "score": 700, "debt": 0.0}, "missing_required_output", "limit"),
        ({"id": "A1", "score": 999, "debt": 0.0, "income": 10.0}, "output_not_allowed", "grade"),
        ({"id": "A1", "score": 700, "debt": 1000.0, "income": 500.0}, "unique_rows_overlap", None),
    ],
)
@pytest.mark.parametrize("engine", ["compiled", "reference"])
def test_evaluation_errors_carry_their_code(record: dict, code: str, output, engine: str) -> None:
    from tests.test_threads import POLICY

    policy = compile_source(POLICY, "shared_state.policy")
    with pytest.raises(EvaluationError) as error:
        policy.evaluate(record, as_of="2026-11-21", lists={"watch": []}, engine=engine)
    body = error.value.to_json()
    assert body["code"] == code and body.get("output") == output
    assert body["location"]["file"] == "shared_state.policy" and body["location"]["line"] > 0
