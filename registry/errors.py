"""The registry's one error type, with stable codes and the HTTP status each maps to.

Every refusal of the registry (a missing role, an unknown policy, a self-approval, a database that is down) is a
`RegistryError`: a code from `HTTP_STATUS`, a message that says what and why in the user's terms, and a list of
details (the reasons a submit was refused, the field that is wrong). The CLI prints it; the server renders it as
`{"error": {"kind", "message", "details"}}` with the mapped status. No SQL text and no traceback is ever in one.
"""

from __future__ import annotations

from typing import Any

from dsl.errors import DecideError

HTTP_STATUS = {
    "invalid": 422,  # the request itself is wrong: a bad name, a bad value, a malformed file
    "refused": 422,  # a well-formed request the rules refuse: a submit with failing tests
    "authentication_failed": 401,
    "permission_denied": 403,
    "not_found": 404,
    "conflict": 409,  # the request clashes with the current state: a vote on a rejected version
    "unavailable": 503,  # the database cannot be reached, or its schema is not the one this code needs
}


class RegistryError(DecideError):
    """A refusal or failure of a registry operation, with a stable `code` (a key of `HTTP_STATUS`)."""

    def __init__(
        self,
        code: str,
        message: str,
        details: list[str] | None = None,
        audit_event: tuple[str, str, str, dict[str, Any]] | None = None,
    ) -> None:
        if code not in HTTP_STATUS:
            raise ValueError(f"unknown registry error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = list(details or ())
        # (actor, action, object, details) of a refusal the trail must show (a missing role, a wrong password):
        # recorded by `Registry.write` in a transaction of its own, after the refused one is rolled back.
        self.audit_event = audit_event

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.code, "message": self.message, "details": self.details}

    def render(self) -> str:
        lines = [f"error: {self.message}"]
        lines.extend(f"  - {detail}" for detail in self.details)
        return "\n".join(lines)


def not_found(what: str) -> RegistryError:
    return RegistryError("not_found", f"{what} does not exist")
