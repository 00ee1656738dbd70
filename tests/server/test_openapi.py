"""The OpenAPI 3.1 document at /v1/openapi.json, on both registry backends: a valid OpenAPI 3.1 document whose
every `$ref` resolves and whose schemas are valid JSON Schema, documenting every route the app serves; and a
schemathesis run against the app in process (positive and negative data for every operation, with the demo
key) that finds no server error and no response breaking the document (status, content type, body schema).

The generated path parameters are now and then replaced by the demo's policy names and by ids of decisions
really logged, so the run reaches the engine, the log and replay, not only the 403s and 404s of random names.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry import Registry
from tests.server.api_support import EXAMPLE_POLICIES, example_cases
from tests.server.conftest import wait_logged

# schemathesis 3 still uses jsonschema's deprecated RefResolver: it is imported in the tests, under this filter.
pytestmark = pytest.mark.filterwarnings("ignore:jsonschema.*:DeprecationWarning")
MAX_EXAMPLES = 30  # per operation: the whole run stays within seconds per backend

# Routes that are deliberately not in the document: the Prometheus text and the document itself.
UNDOCUMENTED = {("GET", "/metrics"), ("GET", "/v1/openapi.json")}


def _resolve(document: dict[str, Any], reference: str) -> Any:
    assert reference.startswith("#/"), reference  # the document is self-contained
    node: Any = document
    for part in reference[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"$ref {reference} does not resolve"
        node = node[part]
    return node


def _references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _references(value)
    elif isinstance(node, list):
        for value in node:
            yield from _references(value)


def _validate_openapi_31(document: dict[str, Any]) -> None:
    try:
        from openapi_spec_validator import validate  # type: ignore[import-not-found]
    except ImportError:  # not a dependency: the OpenAPI 3.1 meta-schema schemathesis ships will do
        from schemathesis.specs.openapi.definitions import OPENAPI_31

        jsonschema.validators.validator_for(OPENAPI_31)(OPENAPI_31).validate(document)
    else:
        validate(document)


def test_the_document_is_valid_openapi_3_1_and_documents_every_route(app: Flask, client: FlaskClient) -> None:
    response = client.get("/v1/openapi.json")  # public: a calling system reads it before it has a key
    assert response.status_code == 200 and response.mimetype == "application/json"
    document = response.get_json()
    assert document["openapi"].startswith("3.1.")
    _validate_openapi_31(document)
    references = list(_references(document))
    assert references
    for reference in references:
        _resolve(document, reference)
    for schema in document["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)

    documented = set()
    operation_ids = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            documented.add((method.upper(), path))
            operation_ids.append(operation["operationId"])
            responses = set(operation["responses"])
            assert "200" in responses, (method, path)
            if operation.get("security"):
                assert "401" in responses, (method, path)
            if "requestBody" in operation:
                assert {"400", "413", "415"} <= responses, (method, path)
            for status, answer in operation["responses"].items():
                assert set(answer["content"]) == {"application/json"}, (method, path, status)
    assert len(operation_ids) == len(set(operation_ids))
    served = {
        (method, rule.rule.replace("<", "{").replace(">", "}"))
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert served - UNDOCUMENTED == documented


class _Many:
    """hypothesis-jsonschema 0.23.1 (the newest, which schemathesis 3.39 uses) calls `many.more()`, which
    Hypothesis 6.170 replaced by iterating `with many(...)`: the old interface on the new one."""

    def __init__(self, many_type: type, data: Any, **options: Any) -> None:
        self._many = many_type(data, **options)
        self._many.__enter__()
        self._elements = iter(self._many)

    def more(self) -> bool:
        try:
            next(self._elements)
        except StopIteration:
            self._many.__exit__(None, None, None)
            return False
        return True

    def reject(self, why: str | None = None) -> None:
        self._many.reject(why)


@pytest.fixture
def jsonschema_strategies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Object schemas generated again on a Hypothesis whose `many` has no `more()` (only inside this test)."""
    from hypothesis.internal.conjecture import utils
    from hypothesis_jsonschema import _from_schema

    if hasattr(utils.many, "more"):
        return
    shim = types.SimpleNamespace(**{name: getattr(utils, name) for name in dir(utils) if not name.startswith("__")})
    shim.many = lambda data, **options: _Many(utils.many, data, **options)
    monkeypatch.setattr(_from_schema, "cu", shim)


def _logged_decisions(client: FlaskClient, headers: dict[str, str], registry: Registry) -> list[str]:
    """A decision and a refused input of each example policy, in the log."""
    ids = []
    for policy in EXAMPLE_POLICIES:
        cases = example_cases(policy)
        for case in (cases[0], cases[-1]):
            body = {"input": case["input"], **({"as_of": case["as_of"]} if "as_of" in case else {})}
            answer = client.post(f"/v1/decisions/{policy}", json=body, headers=headers).get_json()
            ids.append(answer.get("decision_id") or answer["error"]["details"]["decision_id"])
    wait_logged(registry, ids)
    return ids


@pytest.mark.usefixtures("jsonschema_strategies")
def test_schemathesis_finds_no_server_error_and_no_response_breaking_the_document(
    app: Flask, client: FlaskClient, headers: dict[str, str], registry: Registry
) -> None:
    import schemathesis
    from schemathesis import DataGenerationMethod
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = (not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance)
    decision_ids = _logged_decisions(client, headers, registry)
    if not schemathesis.experimental.OPEN_API_3_1.is_enabled:
        schemathesis.experimental.OPEN_API_3_1.enable()  # schemathesis 3 supports 3.1 behind this flag
    schema = schemathesis.from_wsgi(
        "/v1/openapi.json",
        app,
        data_generation_methods=list(DataGenerationMethod),  # valid requests, and requests breaking the document
    )
    failures = {}
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(
            case=operation.as_strategy(),
            policy=st.sampled_from([None, *EXAMPLE_POLICIES]),
            decision_id=st.sampled_from([None, *decision_ids]),
        )
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
        )
        def check(case: Any, policy: str | None, decision_id: str | None) -> None:
            parameters = case.path_parameters or {}
            if policy is not None and "policy" in parameters:
                parameters["policy"] = policy
            if decision_id is not None and "decision_id" in parameters:
                parameters["decision_id"] = decision_id
            response = case.call(headers=headers)
            case.validate_response(response, checks=checks)

        try:
            check()
        except Exception as exc:  # every operation is run; the failures are reported together
            failures[operation.verbose_name] = str(exc)
    assert operations == 8
    assert not failures, "\n\n".join(f"{name}:\n{text}" for name, text in failures.items())
