"""Golden feature cases: one small policy per language feature, expectations derived by hand from the spec.

Each `tests/golden/features/FEATURE.policy` has a `FEATURE.tests.json` next to
it in the spec §7 format. Every case becomes one test (id `features/FEATURE::case
name`) that compiles the policy with `compiler.compile_file` and runs the case
through `compiler.testcases.run_case`, the same comparison `decide test` makes.
The expected values were worked out from the spec by hand, never copied from
the engine; a failing case is a disagreement to investigate, not to re-record.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from pathlib import Path

import pytest

from compiler import EvaluationError, InputError, Policy, PolicyError, compile_file
from compiler.testcases import load_cases, run_case
from tests.conftest import spec_example_input, spec_text_input

FEATURES = Path(__file__).resolve().parent / "golden" / "features"
SPEC = Path(__file__).resolve().parents[2] / "shared" / "spec" / "policy-language.md"

POLICY_FILES = sorted(FEATURES.glob("*.policy"))
TEST_FILES = sorted(FEATURES.glob("*.tests.json"))


def _feature(path: Path) -> str:
    return path.name.removesuffix(".tests.json").removesuffix(".policy")


def _collect_cases() -> list:
    params = []
    for tests_path in TEST_FILES:
        feature = _feature(tests_path)
        for case in load_cases(tests_path):
            params.append(pytest.param(feature, case, id=f"features/{feature}::{case['name']}"))
    return params


@functools.cache
def _compiled(feature: str) -> Policy:
    return compile_file(FEATURES / f"{feature}.policy")


def _compile_or_fail(feature: str) -> Policy:
    try:
        return _compiled(feature)
    except PolicyError as exc:
        pytest.fail(f"features/{feature}.policy does not compile:\n{exc}")


def test_every_feature_has_policy_and_cases() -> None:
    policies = {_feature(p) for p in POLICY_FILES}
    tests = {_feature(p) for p in TEST_FILES}
    assert policies, "no golden feature policies found"
    assert policies == tests, f"unpaired files: {sorted(policies ^ tests)}"


@pytest.mark.parametrize("path", POLICY_FILES, ids=lambda p: f"features/{_feature(p)}")
def test_feature_policy_compiles(path: Path) -> None:
    policy = _compile_or_fail(_feature(path))
    errors = [d for d in policy.diagnostics if d.is_error]
    assert not errors, errors


@pytest.mark.parametrize(("feature", "case"), _collect_cases())
def test_feature_case(feature: str, case: dict) -> None:
    policy = _compile_or_fail(feature)
    outcome = run_case(policy, case)
    assert outcome.passed, f"features/{feature}::{case['name']}\n" + "\n".join(outcome.failures)


def test_spec_example_result_verbatim() -> None:
    """The spec §6 result for the §1 example, as the whole result object (no `version` for a file)."""
    if not SPEC.exists():
        pytest.skip("the shared spec is not next to the repository")
    text = SPEC.read_text(encoding="utf-8")
    source = re.search(r"```\n(# Consumer loan origination\n.*?)```", text, re.S)
    expected = re.search(r"```json\n(.*?)```", text, re.S)
    assert source and expected, "spec §1 example or §6 result not found"
    assert (FEATURES / "spec_example.policy").read_text(encoding="utf-8") == source.group(1)
    wanted = json.loads(expected.group(1))
    del wanted["version"]  # "absent when a file is evaluated directly"
    record = spec_example_input()
    assert record == spec_text_input()
    result = _compile_or_fail("spec_example").evaluate(record, as_of="2026-11-21", lists={"blacklist": []})
    assert result == wanted


def _pii_error_cases() -> list:
    cases = load_cases(FEATURES / "pii_fields.tests.json")
    return [
        pytest.param(case, id=f"features/pii_fields::{case['name']}") for case in cases if "error" in case["expect"]
    ]


@pytest.mark.parametrize("case", _pii_error_cases())
def test_pii_values_never_appear_in_errors(case: dict) -> None:
    """Spec §3 `pii`: masked everywhere shown outside the evaluation, errors included."""
    policy = _compile_or_fail("pii_fields")
    pii = {f.name for f in policy.inputs if f.pii}
    with pytest.raises((InputError, EvaluationError)) as raised:
        policy.evaluate(case["input"], as_of="2026-11-21", lists={"blacklist": []})
    message = str(raised.value)
    for name, value in case["input"].items():
        if name in pii and value is not None and len(str(value)) > 4:
            assert str(value) not in message, f"pii field {name}'s value is shown in the error: {message}"


def test_extra_fields_can_be_ignored_on_request() -> None:
    """Spec §6: extra fields are rejected unless the caller asks to ignore them."""
    policy = _compile_or_fail("input_presence")
    record = {"req_a": 2, "req_b": "x", "extra_z": 1}
    with pytest.raises(InputError, match="extra_z"):
        policy.evaluate(record)
    result = policy.evaluate(record, ignore_extra=True)
    assert result["outputs"]["total"] == 2


def test_today_defaults_to_the_current_utc_date() -> None:
    """Spec §6: without as_of, `today` is the current UTC date."""
    policy = _compile_or_fail("today_as_of")
    before = dt.datetime.now(dt.UTC).date()
    result = policy.evaluate({"birth": "2000-01-01", "due": before.isoformat()})
    after = dt.datetime.now(dt.UTC).date()
    assert result["outputs"]["is_today"] is True or before != after
    assert result["outputs"]["overdue_days"] in {0, (after - before).days}
