"""Prefetch keys and their FHIR query templates: what the service reads and how it asks for it.

Discovery advertises these templates; the fallback fetcher runs the same queries against ``fhirServer``
when a key is absent from prefetch, so both paths read the same data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from cds_service.core import codes

PATIENT_TOKEN: Final = "{{context.patientId}}"  # noqa: S105 - a prefetch token, not a secret


@dataclass(frozen=True)
class PrefetchQuery:
    """One prefetch key: its FHIR query template and whether the decision depends on it."""

    key: str
    template: str
    required: bool
    purpose: str

    def render(self, patient_id: str) -> str:
        """The query with the patient id filled in (the id is URL-safe by FHIR's id rules)."""
        return self.template.replace(PATIENT_TOKEN, patient_id)


def _token_list(pairs: list[tuple[str, str]]) -> str:
    return ",".join(f"{system}|{code}" for system, code in pairs)


_LAB_CODES = _token_list([(codes.LOINC, c) for c in sorted(codes.ALL_LABS)])
_REPORT_CATEGORIES = _token_list(list(codes.REPORT_CATEGORIES))

QUERIES: Final[tuple[PrefetchQuery, ...]] = (
    PrefetchQuery("patient", f"Patient/{PATIENT_TOKEN}", False, "the patient"),
    PrefetchQuery(
        "conditions",
        f"Condition?patient={PATIENT_TOKEN}",
        True,
        "diagnoses: cholangiocarcinoma, ankylosing spondylitis, exclusions",
    ),
    PrefetchQuery(
        "observations",
        f"Observation?patient={PATIENT_TOKEN}&code={_LAB_CODES}&_sort=-date",
        True,
        "laboratory results: serum IgG4, complement, exclusion serology, context labs",
    ),
    PrefetchQuery(
        "reports",
        f"DiagnosticReport?patient={PATIENT_TOKEN}&category={_REPORT_CATEGORIES}&_sort=-date",
        True,
        "imaging and pathology reports",
    ),
    PrefetchQuery(
        "medicationRequests",
        f"MedicationRequest?patient={PATIENT_TOKEN}",
        False,
        "medications: glucocorticoids lower IgG4; immunomodulators as context",
    ),
    PrefetchQuery(
        "medicationStatements",
        f"MedicationStatement?patient={PATIENT_TOKEN}",
        False,
        "medications: glucocorticoids lower IgG4; immunomodulators as context",
    ),
)

QUERIES_BY_KEY: Final[dict[str, PrefetchQuery]] = {q.key: q for q in QUERIES}
