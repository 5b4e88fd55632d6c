"""Small builders of FHIR R4 JSON for tests (pure data, no network)."""

from __future__ import annotations

import base64
import itertools
from typing import Any

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
CPT = "http://www.ama-assn.org/go/cpt"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"

_ids = itertools.count(1)


def _id(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


def codeable(code: str | None, system: str, text: str | None = None) -> dict[str, Any]:
    concept: dict[str, Any] = {}
    if code:
        concept["coding"] = [{"system": system, "code": code}]
    if text:
        concept["text"] = text
    return concept


def observation(
    code: str,
    value: float | str | None = None,
    unit: str = "g/L",
    *,
    high: float | None = None,
    low: float | None = None,
    range_unit: str | None = None,
    range_text: str | None = None,
    status: str = "final",
    when: str = "2026-10-01",
    interpretation: str | None = None,
    value_string: str | None = None,
) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "id": _id("obs"),
        "status": status,
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": when,
    }
    if value is not None:
        obs["valueQuantity"] = {"value": value, "unit": unit, "system": UCUM, "code": unit}
    if value_string is not None:
        obs["valueString"] = value_string
    ref: dict[str, Any] = {}
    if high is not None:
        ref["high"] = {"value": high, "unit": range_unit or unit, "system": UCUM, "code": range_unit or unit}
    if low is not None:
        ref["low"] = {"value": low, "unit": range_unit or unit, "system": UCUM, "code": range_unit or unit}
    if range_text is not None:
        ref["text"] = range_text
    if ref:
        obs["referenceRange"] = [ref]
    if interpretation:
        obs["interpretation"] = [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                        "code": interpretation,
                    }
                ]
            }
        ]
    return obs


def condition(
    code: str | None = None,
    system: str = SNOMED,
    *,
    text: str | None = None,
    verification: str | None = "confirmed",
    clinical: str | None = "active",
) -> dict[str, Any]:
    concept = codeable(code, system, text)
    cond: dict[str, Any] = {
        "resourceType": "Condition",
        "id": _id("cond"),
        "subject": {"reference": "Patient/p1"},
        "code": concept,
    }
    if verification:
        cond["verificationStatus"] = {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": verification}
            ]
        }
    if clinical:
        cond["clinicalStatus"] = {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": clinical}
            ]
        }
    return cond


def report(
    conclusion: str | None = None,
    *,
    kind: str = "imaging",
    text: str | None = None,
    status: str = "final",
    when: str = "2026-10-02",
    study: str = "CT abdomen and pelvis with contrast",
    category: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """A DiagnosticReport; ``category`` (system, code) overrides the US Core category that ``kind`` picks."""
    system, code = category or (LOINC, "LP29684-5" if kind == "imaging" else "LP7839-6")
    rep: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "id": _id("rep"),
        "status": status,
        "category": [{"coding": [{"system": system, "code": code}]}],
        "code": {"text": study},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": when,
    }
    if conclusion:
        rep["conclusion"] = conclusion
    if text:
        rep["presentedForm"] = [
            {"contentType": "text/plain", "data": base64.b64encode(text.encode()).decode()}
        ]
    return rep


def service_request(
    code: str | None = None,
    system: str = CPT,
    *,
    text: str | None = None,
    reason: tuple[str, str] | None = None,
) -> dict[str, Any]:
    concept = codeable(code, system, text)
    sr: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": _id("sr"),
        "status": "draft",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "code": concept,
    }
    if reason:
        sr["reasonCode"] = [{"coding": [{"system": reason[0], "code": reason[1]}]}]
    return sr


def medication_request(rxnorm: str | None = None, *, text: str | None = None) -> dict[str, Any]:
    concept = codeable(rxnorm, RXNORM, text)
    return {
        "resourceType": "MedicationRequest",
        "id": _id("mr"),
        "status": "draft",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": concept,
    }


def bundle(*resources: dict[str, Any], kind: str = "searchset") -> dict[str, Any]:
    result: dict[str, Any] = {"resourceType": "Bundle", "type": kind}
    if resources:
        result["entry"] = [{"resource": r} for r in resources]
    if kind == "searchset":
        result["total"] = len(resources)
    return result


def hook_request(
    hook: str = "order-sign",
    *,
    orders: list[dict[str, Any]] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    observations: list[dict[str, Any]] | None = None,
    reports: list[dict[str, Any]] | None = None,
    medications: list[dict[str, Any]] | None = None,
    omit: tuple[str, ...] = (),
    patient_id: str = "p1",
) -> dict[str, Any]:
    context: dict[str, Any] = {"userId": "Practitioner/u1", "patientId": patient_id}
    if hook != "patient-view":
        context["draftOrders"] = bundle(*(orders or []), kind="collection")
    prefetch: dict[str, Any] = {
        "patient": {"resourceType": "Patient", "id": patient_id},
        "conditions": bundle(*(conditions or [])),
        "observations": bundle(*(observations or [])),
        "reports": bundle(*(reports or [])),
        "medicationRequests": bundle(*(medications or [])),
        "medicationStatements": bundle(),
    }
    for key in omit:
        prefetch.pop(key)
    return {
        "hookInstance": "00000000-0000-4000-8000-000000000001",
        "hook": hook,
        "context": context,
        "prefetch": prefetch,
    }


def without_uuids(value: Any) -> Any:
    """``value`` with every ``uuid`` key removed, recursively (cards get fresh uuids on each call)."""
    if isinstance(value, dict):
        return {k: without_uuids(v) for k, v in value.items() if k != "uuid"}
    if isinstance(value, list):
        return [without_uuids(v) for v in value]
    return value


def put_entry(resource: dict[str, Any]) -> dict[str, Any]:
    """A transaction Bundle entry that PUTs ``resource`` at its fixed id."""
    return {
        "fullUrl": f"urn:uuid:{resource['resourceType']}-{resource['id']}",
        "resource": resource,
        "request": {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"},
    }
