"""Every error the HTTP API answers with: one type, a stable kind, an HTTP status, and a JSON body
`{"error": {"kind", "message", "details"}}`.

Input: an exception raised while handling a request (the API's own `ApiError`, a registry or engine error).
Output: an `ApiError`, whose `.body()` is the response. Nothing a caller sent is ever a 500; values of personal
(`pii`) inputs never appear in a message (the engine's messages never contain them).
"""

from __future__ import annotations

from typing import Any

from compiler.evaluate.json_input import JsonInputError
from dsl.errors import EvaluationError, InputError
from registry.errors import HTTP_STATUS, RegistryError

STATUS = {
    "malformed_json": 400,
    "invalid_request": 400,
    "authentication_failed": 401,
    "permission_denied": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "conflict": 409,
    "body_too_large": 413,
    "unsupported_media_type": 415,
    "input": 422,
    "evaluation": 422,
    "refused": 422,
    "invalid": 422,
    "unavailable": 503,
    "internal": 500,
}


class ApiError(Exception):
    def __init__(self, kind: str, message: str, details: dict[str, Any] | None = None, status: int | None = None):
        super().__init__(message)
        self.kind, self.message, self.details = kind, message, details or {}
        self.status = status or STATUS[kind]

    def body(self) -> dict[str, Any]:
        return {"error": {"kind": self.kind, "message": self.message, "details": self.details}}


def from_registry(exc: RegistryError) -> ApiError:
    details = {"reasons": exc.details} if exc.details else {}
    return ApiError(exc.code, exc.message, details, HTTP_STATUS.get(exc.code, 422))


def from_json(exc: JsonInputError) -> ApiError:
    where = f" at line {exc.line}, column {exc.column}" if exc.line else ""
    return ApiError(
        "malformed_json",
        f"the request body is not valid JSON{where}: {exc.message}",
        {"line": exc.line, "column": exc.column, "code": exc.code},
    )


def from_input(exc: InputError) -> ApiError:
    errors = exc.to_json()["errors"]
    fields = ", ".join(dict.fromkeys(str(error["field"]) for error in errors))
    return ApiError("input", f"the input has {len(errors)} problem(s): {fields}", {"errors": errors})


def from_evaluation(exc: EvaluationError) -> ApiError:
    details = exc.to_json()
    details.pop("kind", None)
    return ApiError("evaluation", str(details.get("message") or exc), details)
