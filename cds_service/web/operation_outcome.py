"""FHIR OperationOutcome bodies for error responses."""

from __future__ import annotations

from typing import Any

from cds_service.errors import CDSError, DataUnavailableError, RequestError

_ISSUE_CODES = {400: "invalid", 404: "not-found", 412: "not-found", 413: "too-costly", 500: "exception"}


def operation_outcome(status: int, diagnostics: str, expression: list[str] | None = None) -> dict[str, Any]:
    """An OperationOutcome with one error issue."""
    issue: dict[str, Any] = {
        "severity": "error",
        "code": _ISSUE_CODES.get(status, "processing"),
        "diagnostics": diagnostics,
    }
    if expression:
        issue["expression"] = expression
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def error_outcome(error: CDSError) -> dict[str, Any]:
    """The OperationOutcome for one of the service's errors; a 412 lists every failed query."""
    if isinstance(error, DataUnavailableError) and error.failed:
        return {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "error",
                    "code": "not-found",
                    "diagnostics": f"prefetch '{f.key}' ({f.query.split('?')[0]}) unavailable: {f.reason}",
                    "expression": [f"prefetch.{f.key}"],
                }
                for f in error.failed
            ],
        }
    field = error.field if isinstance(error, RequestError) else None
    return operation_outcome(error.status_code, error.diagnostics, [field] if field else None)
