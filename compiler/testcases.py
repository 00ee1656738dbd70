"""Policy test cases (spec §7): load a `NAME.tests.json`, run each case, compare with `expect`.

Input: a compiled `Policy` and the decoded list of cases (or a path to them).
Output: one `CaseResult` per case, each with readable failure lines
("decision: expected "approve", got "refer""). Used by `decide test` and by
the approval workflow, which refuses to submit a version with a failing case.

Choices the spec leaves open (docs/language.md records them): a case without
`lists` evaluates with every store list empty; `expect.error` is a substring
of the error message; `expect.trace` may be given; numbers compare equal
across int and float, and floats within a relative tolerance of 1e-9.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from compiler.policy import Policy
from compiler.values import ValueProblem, parse_date
from dsl.errors import DecideError, EvaluationError, InputError

CASE_KEYS = {"name", "input", "as_of", "lists", "expect", "description"}
FLOAT_TOLERANCE = 1e-9


class TestFileError(DecideError):
    """A test case file that cannot be read or does not have the shape of spec §7."""

    __test__ = False


@dataclass
class CaseResult:
    name: str
    passed: bool
    failures: list[str] = field(default_factory=list)
    result: dict[str, Any] | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "failures": self.failures,
            "result": self.result,
            "error": self.error,
        }


def load_cases(path: str | Path) -> list[dict[str, Any]]:
    """Read and validate a test case file; raise TestFileError saying what and where."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TestFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise TestFileError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        cases = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise TestFileError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    return validate_cases(cases, str(path))


def validate_cases(cases: Any, where: str = "<tests>") -> list[dict[str, Any]]:
    if not isinstance(cases, list):
        raise TestFileError(f"{where}: a test file holds a JSON list of cases")
    problems: list[str] = []
    names: set[str] = set()
    for position, case in enumerate(cases, start=1):
        label = f"{where}: case {position}"
        if not isinstance(case, dict):
            problems.append(f"{label}: a case is a JSON object")
            continue
        name = case.get("name")
        if not isinstance(name, str) or not name:
            problems.append(f'{label}: "name" must be a non-empty string')
        elif name in names:
            problems.append(f'{label}: the name "{name}" is used twice')
        else:
            names.add(name)
            label = f'{where}: case "{name}"'
        unknown = sorted(set(case) - CASE_KEYS)
        if unknown:
            problems.append(
                f"{label}: unknown key(s) {', '.join(unknown)} (the keys are {', '.join(sorted(CASE_KEYS))})"
            )
        if "input" not in case:
            problems.append(f'{label}: "input" is missing')
        if not isinstance(case.get("expect"), dict) or not case.get("expect"):
            problems.append(f'{label}: "expect" must be an object naming at least one output, reasons, trace or error')
        if "as_of" in case:
            try:
                parse_date(case["as_of"])
            except ValueProblem as exc:
                problems.append(f'{label}: "as_of": {exc}')
        lists = case.get("lists", {})
        if not isinstance(lists, dict) or not all(isinstance(v, list) for v in lists.values()):
            problems.append(f'{label}: "lists" must map each list name to a JSON list of members')
    if problems:
        raise TestFileError("\n".join(problems))
    return cases


def run_cases(policy: Policy, cases: list[dict[str, Any]]) -> list[CaseResult]:
    return [run_case(policy, case) for case in cases]


def run_case(policy: Policy, case: dict[str, Any]) -> CaseResult:
    expect = case["expect"]
    lists = {name: [] for name in policy.store_lists}
    lists.update(case.get("lists") or {})
    outcome = CaseResult(case["name"], passed=True)
    try:
        outcome.result = policy.evaluate(case["input"], as_of=case.get("as_of"), lists=lists)
    except (InputError, EvaluationError) as exc:
        outcome.error = str(exc)
    failures = outcome.failures
    if "error" in expect:
        wanted = expect["error"]
        if outcome.error is None:
            failures.append(f'expected an error containing "{wanted}", but the evaluation succeeded')
        elif not isinstance(wanted, str) or wanted not in outcome.error:
            failures.append(f'expected an error containing "{wanted}", got: {outcome.error}')
    elif outcome.error is not None:
        failures.append(f"the evaluation failed: {outcome.error}")
    if outcome.result is not None:
        outputs = outcome.result["outputs"]
        for key, wanted in expect.items():
            if key == "error":
                continue
            if key == "trace":
                actual = outcome.result.get("trace")
            elif key in outputs:
                actual = outputs[key]
            else:
                known = ", ".join([*outputs, "trace", "error"])
                failures.append(f'"{key}" is not an output of the policy (expect can name: {known})')
                continue
            if not values_match(wanted, actual):
                failures.append(f"{key}: expected {_show(wanted)}, got {_show(actual)}")
    outcome.passed = not failures
    return outcome


def values_match(wanted: Any, actual: Any) -> bool:
    """Equality of JSON values; numbers equal across int/float, floats within a relative 1e-9."""
    if isinstance(wanted, bool) or isinstance(actual, bool):
        return wanted is actual
    if isinstance(wanted, (int, float)) and isinstance(actual, (int, float)):
        if isinstance(wanted, int) and isinstance(actual, int):
            return wanted == actual
        return math.isclose(wanted, actual, rel_tol=FLOAT_TOLERANCE, abs_tol=1e-12)
    if isinstance(wanted, list) and isinstance(actual, list):
        return len(wanted) == len(actual) and all(values_match(w, a) for w, a in zip(wanted, actual))
    if isinstance(wanted, dict) and isinstance(actual, dict):
        return wanted.keys() == actual.keys() and all(values_match(wanted[k], actual[k]) for k in wanted)
    return wanted == actual


def _show(value: Any) -> str:
    return orjson.dumps(value).decode()


def find_test_files(paths: list[str]) -> list[tuple[Path, Path]]:
    """(policy file, tests file) pairs for the given files and directories (searched recursively)."""
    pairs: list[tuple[Path, Path]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for policy_path in sorted(path.rglob("*.policy")):
                tests = policy_path.with_suffix(".tests.json")
                if tests.exists():
                    pairs.append((policy_path, tests))
        elif path.name.endswith(".tests.json"):
            pairs.append((path.with_name(path.name[: -len(".tests.json")] + ".policy"), path))
        elif path.suffix == ".policy":
            pairs.append((path, path.with_suffix(".tests.json")))
        elif not path.exists():
            raise TestFileError(f"{path}: no such file or directory")
        else:
            raise TestFileError(f"{path}: not a .policy file, a .tests.json file or a directory")
    return pairs
