"""The HTTP API as an OpenAPI 3.1 document, served at /v1/openapi.json and checked by schemathesis in CI.

Input: nothing (the API's shape is fixed; each policy's own input and output JSON Schemas are served by
GET /v1/policies/{name}). Output: the document as a dict. Every status an operation can answer is listed with
its body's schema, errors included, so a response that breaks the document is a test failure.
"""

from __future__ import annotations

from typing import Any

from compiler import COMPILER_VERSION

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["kind", "message", "details"],
            "properties": {
                "kind": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "object"},
            },
        }
    },
}
_ERRORS = {
    "400": "Malformed JSON (with line and column) or a malformed request envelope",
    "401": "Missing, unknown or revoked API key",
    "403": "The key is not scoped to this policy",
    "404": "Unknown policy, version or decision",
    "405": "Method not allowed",
    "409": "Idempotency conflict: the request_id was used with another body",
    "413": "Body or batch too large",
    "415": "The body is not application/json",
    "422": "Input errors (each naming its field) or an evaluation error (naming the statement)",
    "503": "The policy cannot be served, or the database an operation needs is unavailable",
}


def _errors(*codes: str) -> dict[str, Any]:
    return {
        code: {
            "description": _ERRORS[code],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for code in codes
    }


def _json(schema: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


_POLICY = {"name": "policy", "in": "path", "required": True, "schema": {"type": "string"}, "description": "Policy name"}
_DECISION_ID = {"name": "decision_id", "in": "path", "required": True, "schema": {"type": "string"}}
_SECURED = [{"apiKey": []}]
_DATE = {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}

SCHEMAS: dict[str, Any] = {
    "Error": _ERROR,
    "DecisionRequest": {
        "type": "object",
        "required": ["input"],
        "additionalProperties": False,
        "properties": {
            "input": {"type": "object", "description": "The input record; its schema is the policy's input_schema"},
            "as_of": {**_DATE, "description": "The evaluation date (default: today, UTC)"},
            "request_id": {"type": "string", "minLength": 1, "maxLength": 200},
            "version": {"type": "integer", "minimum": 1, "description": "Pin an approved version"},
            "trace": {"type": "boolean"},
            "ignore_extra": {"type": "boolean"},
        },
    },
    "BatchRequest": {
        "type": "object",
        "required": ["inputs"],
        "additionalProperties": False,
        "properties": {
            "inputs": {"type": "array", "items": {"type": "object"}},
            "as_of": _DATE,
            "version": {"type": "integer", "minimum": 1},
            "trace": {"type": "boolean"},
            "ignore_extra": {"type": "boolean"},
        },
    },
    "Decision": {
        "type": "object",
        "required": ["decision_id", "policy", "version", "arm", "outputs", "lists", "as_of", "timings"],
        "properties": {
            "decision_id": {"type": "string", "format": "uuid"},
            "policy": {"type": "string"},
            "version": {"type": "integer"},
            "arm": {"enum": ["champion", "challenger", "pinned"]},
            "outputs": {"type": "object", "description": "Every output, and reasons (spec §6)"},
            "trace": {"type": "array", "items": {"type": "string"}},
            "lists": {"type": "object", "description": "The revision of each named list used"},
            "as_of": _DATE,
            "timings": {
                "type": "object",
                "required": ["engine_us", "total_us"],
                "properties": {"engine_us": {"type": "integer"}, "total_us": {"type": "integer"}},
            },
            "degraded": {
                "type": "boolean",
                "description": "The deployment's fallback outcome, after an evaluation error",
            },
            "error": {"type": "object"},
        },
    },
    "BatchResult": {
        "type": "object",
        "required": ["policy", "results"],
        "properties": {
            "policy": {"type": "string"},
            "results": {
                "type": "array",
                "items": {
                    "oneOf": [{"$ref": "#/components/schemas/Decision"}, {"$ref": "#/components/schemas/BatchError"}]
                },
            },
            "timings": {"type": "object"},
        },
    },
    "BatchError": {
        "type": "object",
        "required": ["error", "index"],
        "properties": {
            "error": _ERROR["properties"]["error"],
            "index": {"type": "integer"},
            "decision_id": {"type": ["string", "null"]},
        },
    },
    "LoggedDecision": {
        "type": "object",
        "required": ["decision_id", "policy", "arm", "status", "record", "lists"],
        "properties": {
            "decision_id": {"type": "string"},
            "logged_at": {"type": "string"},
            "policy": {"type": "string"},
            "version": {"type": ["integer", "null"]},
            "arm": {"type": "string"},
            "status": {"enum": ["decided", "input_error", "evaluation_error", "degraded"]},
            "record": {"type": "object", "description": "The input, personal values masked"},
            "outputs": {"type": ["object", "null"]},
            "reasons": {"type": ["array", "null"]},
            "trace": {"type": ["array", "null"]},
            "lists": {"type": "object"},
            "error": {"type": ["object", "null"]},
        },
    },
    "ReplayRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"version": {"type": "integer", "minimum": 1}},
    },
    "Replay": {
        "type": "object",
        "required": ["decision_id", "original", "replayed", "difference"],
        "properties": {
            "decision_id": {"type": "string"},
            "original": {"type": "object"},
            "replayed": {"type": "object"},
            "difference": {"type": ["object", "null"]},
        },
    },
    "PolicyList": {"type": "object", "required": ["policies"], "properties": {"policies": {"type": "array"}}},
    "Policy": {
        "type": "object",
        "required": ["name", "deployment"],
        "properties": {
            "name": {"type": "string"},
            "kind": {"type": "string"},
            "deployment": {"type": "object"},
            "versions": {"type": "array", "items": {"type": "object"}},
        },
    },
    "Health": {"type": "object"},
}


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of /v1 and the health endpoints."""

    def post_json(schema):
        return {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
        }

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Decide decision API",
            "version": COMPILER_VERSION,
            "description": "Decisions from the live deployments of the policy registry (docs/server.md).",
        },
        "servers": [{"url": "/"}],
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer", "description": "dk_<id>.<secret>"}},
        },
        "paths": {
            "/v1/decisions/{policy}": {
                "post": {
                    "operationId": "decide",
                    "summary": "Decide one input with the policy's live deployment",
                    "security": _SECURED,
                    "parameters": [_POLICY],
                    "requestBody": post_json("DecisionRequest"),
                    "responses": {
                        "200": _json("Decision", "The decision"),
                        **_errors("400", "401", "403", "404", "409", "413", "415", "422", "503"),
                    },
                }
            },
            "/v1/decisions/{policy}/batch": {
                "post": {
                    "operationId": "decideBatch",
                    "summary": "Decide several inputs; each result or its own error",
                    "security": _SECURED,
                    "parameters": [_POLICY],
                    "requestBody": post_json("BatchRequest"),
                    "responses": {
                        "200": _json("BatchResult", "One result per input, in order"),
                        **_errors("400", "401", "403", "404", "413", "415", "422", "503"),
                    },
                }
            },
            "/v1/decisions/{decision_id}": {
                "get": {
                    "operationId": "getDecision",
                    "summary": "A logged decision, personal data masked",
                    "security": _SECURED,
                    "parameters": [_DECISION_ID],
                    "responses": {
                        "200": _json("LoggedDecision", "The logged decision"),
                        **_errors("401", "403", "404", "503"),
                    },
                }
            },
            "/v1/decisions/{decision_id}/replay": {
                "post": {
                    "operationId": "replayDecision",
                    "summary": "Re-evaluate a logged decision as it was made, under its version or another",
                    "security": _SECURED,
                    "parameters": [_DECISION_ID],
                    "requestBody": {
                        "required": False,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ReplayRequest"}}},
                    },
                    "responses": {
                        "200": _json("Replay", "Both results and their difference"),
                        **_errors("400", "401", "403", "404", "409", "413", "415", "422", "503"),
                    },
                }
            },
            "/v1/policies": {
                "get": {
                    "operationId": "listPolicies",
                    "summary": "The policies this key may call, with their live deployments",
                    "security": _SECURED,
                    "responses": {"200": _json("PolicyList", "Policies"), **_errors("401", "503")},
                }
            },
            "/v1/policies/{policy}": {
                "get": {
                    "operationId": "getPolicy",
                    "summary": "A policy's live deployment and each live version's input and output JSON Schema",
                    "security": _SECURED,
                    "parameters": [_POLICY],
                    "responses": {"200": _json("Policy", "The policy"), **_errors("401", "403", "404", "503")},
                }
            },
            "/healthz": {"get": {"operationId": "health", "responses": {"200": _json("Health", "The process is up")}}},
            "/readyz": {
                "get": {
                    "operationId": "ready",
                    "responses": {"200": _json("Health", "Ready"), "503": _json("Health", "Not ready, and why")},
                }
            },
        },
    }
