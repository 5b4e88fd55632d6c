"""Hook requests: checking the JSON a CDS client sends and sorting its prefetch (no web framework here)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from cds_service.errors import HookMismatchError, RequestError
from cds_service.hooks.queries import QUERIES

FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
"""FHIR's id rule: an id with anything else ("1&_include=*", "../x") is treated as no patient id."""

MAX_LENGTHS: Final = {
    "hook": 64,
    "hookInstance": 256,
    "fhirServer": 2048,
    "fhirAuthorization.access_token": 16 * 1024,
    "context.selections": 256,
}
"""Longest value accepted for each string the service reads from the request itself (``context.patientId`` is
bounded by :data:`FHIR_ID`); longer is a 400 naming the field, and the value is never echoed or logged."""
MAX_SELECTIONS: Final = 1000
"""Most entries of ``context.selections``."""


@dataclass(frozen=True)
class FhirTarget:
    """Where and for whom absent prefetch keys may be fetched: ``fhirServer``, a valid patient id, the token."""

    server: str
    patient_id: str
    access_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class HookRequest:
    """The parts of a CDS Hooks 2.0 request the service uses."""

    hook: str
    hook_instance: str
    context: Mapping[str, Any]
    prefetch: Mapping[str, Any]
    fhir_server: str | None = None
    access_token: str | None = field(default=None, repr=False)

    @property
    def patient_id(self) -> str | None:
        """``context.patientId`` when it is a valid FHIR id (so it can go into a query string unescaped)."""
        value = self.context.get("patientId")
        return value if isinstance(value, str) and FHIR_ID.fullmatch(value) else None

    @property
    def fhir_target(self) -> FhirTarget | None:
        """The FHIR server to query for absent prefetch keys; ``None`` without ``fhirServer`` or a valid
        ``context.patientId`` (the one place that decides whether data may be fetched)."""
        patient_id = self.patient_id
        if not self.fhir_server or patient_id is None:
            return None
        return FhirTarget(self.fhir_server, patient_id, self.access_token)

    @property
    def draft_orders(self) -> Any:
        """``context.draftOrders`` as sent (a Bundle for order hooks)."""
        return self.context.get("draftOrders")


def _optional_string(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise RequestError(f"'{name}' must be a non-empty string", field=name)
    _check_length(value, name)
    return value


def _check_length(value: str, name: str) -> None:
    if len(value) > MAX_LENGTHS[name]:
        raise RequestError(f"'{name}' is longer than {MAX_LENGTHS[name]} characters", field=name)


def _check_selections(context: Mapping[str, Any]) -> None:
    selections = context.get("selections")
    if not isinstance(selections, list):
        return  # unusable selections are ignored by the core (every draft order counts)
    if len(selections) > MAX_SELECTIONS:
        raise RequestError(
            f"'context.selections' has more than {MAX_SELECTIONS} entries", field="context.selections"
        )
    for item in selections:
        if isinstance(item, str):
            _check_length(item, "context.selections")


def _required_string(body: Mapping[str, Any], name: str) -> str:
    value = _optional_string(body, name)
    if value is None:
        raise RequestError(f"'{name}' is required", field=name)
    return value


def parse_hook_request(body: Any, expected_hook: str) -> HookRequest:
    """Check a request body against CDS Hooks 2.0 and the service's hook.

    Raises :class:`RequestError` naming the offending field, or :class:`HookMismatchError`.
    """
    if not isinstance(body, Mapping):
        raise RequestError("the request body must be a JSON object", field="$")
    hook = _required_string(body, "hook")
    hook_instance = _required_string(body, "hookInstance")
    if hook != expected_hook:
        raise HookMismatchError(f"this service answers '{expected_hook}', not '{hook}'", field="hook")
    context = body.get("context")
    if not isinstance(context, Mapping):
        raise RequestError("'context' is required and must be an object", field="context")
    _check_selections(context)
    prefetch = body.get("prefetch", {})
    if not isinstance(prefetch, Mapping):
        raise RequestError("'prefetch' must be an object", field="prefetch")
    fhir_server = _optional_string(body, "fhirServer")
    authorization = body.get("fhirAuthorization")
    token: str | None = None
    if authorization is not None:
        if not isinstance(authorization, Mapping):
            raise RequestError("'fhirAuthorization' must be an object", field="fhirAuthorization")
        raw_token = authorization.get("access_token")
        if not isinstance(raw_token, str) or not raw_token:
            raise RequestError(
                "'fhirAuthorization.access_token' is required", field="fhirAuthorization.access_token"
            )
        _check_length(raw_token, "fhirAuthorization.access_token")
        token = raw_token
    return HookRequest(hook, hook_instance, context, prefetch, fhir_server, token)


@dataclass
class SortedPrefetch:
    """The service's prefetch keys sorted by what the client sent for them."""

    data: dict[str, Any] = field(default_factory=dict)
    """Keys with data (a Bundle or resource) or ``None`` (the client has no data)."""
    failed: dict[str, str] = field(default_factory=dict)
    """Keys the client answered with an OperationOutcome: its failure, not to be fetched again."""
    absent: list[str] = field(default_factory=list)
    """Keys the client did not send: fetch them from ``fhirServer`` or answer 412 if required."""


def _outcome_text(outcome: Mapping[str, Any]) -> str:
    issues = outcome.get("issue")
    codes = [str(i.get("code")) for i in issues if isinstance(i, Mapping)] if isinstance(issues, list) else []
    return "the client's OperationOutcome" + (f" ({', '.join(codes[:3])})" if codes else "")


def sort_prefetch(prefetch: Mapping[str, Any]) -> SortedPrefetch:
    """Sort the service's prefetch keys into data, client failures and absent keys (CDS Hooks 2.0.1)."""
    result = SortedPrefetch()
    for query in QUERIES:
        if query.key not in prefetch:
            result.absent.append(query.key)
            continue
        value = prefetch[query.key]
        if isinstance(value, Mapping) and value.get("resourceType") == "OperationOutcome":
            result.failed[query.key] = _outcome_text(value)
        else:
            result.data[query.key] = value
    return result


def search_errors(value: Any) -> tuple[str | None, bool]:
    """An error or fatal OperationOutcome inside a search Bundle: (its description, whether the Bundle holds
    anything else). A server reports a partial search this way; warnings and information are ignored."""
    if not isinstance(value, Mapping) or value.get("resourceType") != "Bundle":
        return None, True
    entries = value.get("entry")
    resources: list[Mapping[str, Any]] = [
        e["resource"]
        for e in (entries if isinstance(entries, list) else [])
        if isinstance(e, Mapping) and isinstance(e.get("resource"), Mapping)
    ]
    outcomes = [r for r in resources if r.get("resourceType") == "OperationOutcome"]
    failing: list[str] = []
    for outcome in outcomes:
        issues = outcome.get("issue")
        for issue in issues if isinstance(issues, list) else []:
            if isinstance(issue, Mapping) and issue.get("severity") in {"error", "fatal"}:
                failing.append(str(issue.get("code")))
    if not failing:
        return None, True
    return f"the search reported an error ({', '.join(failing[:3])})", len(resources) > len(outcomes)
