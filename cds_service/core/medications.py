"""Medications that matter for the card: glucocorticoids (they lower IgG4) and immunomodulators (context)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final

from cds_service.core import codes
from cds_service.core.evidence import MedicationFact, MedicationKind

INACTIVE_STATUSES: Final = frozenset({"completed", "stopped", "cancelled", "entered-in-error", "not-taken"})

# RxNorm ingredient codes: the card uses its own label, never the record's text.
_RXNORM: Final[dict[str, tuple[MedicationKind, str]]] = {
    "8640": (MedicationKind.GLUCOCORTICOID, "prednisone"),
    "8638": (MedicationKind.GLUCOCORTICOID, "prednisolone"),
    "6902": (MedicationKind.GLUCOCORTICOID, "methylprednisolone"),
    "3264": (MedicationKind.GLUCOCORTICOID, "dexamethasone"),
    "5492": (MedicationKind.GLUCOCORTICOID, "hydrocortisone"),
    "19831": (MedicationKind.GLUCOCORTICOID, "budesonide"),
    "191831": (MedicationKind.IMMUNOMODULATOR, "infliximab"),
    "327361": (MedicationKind.IMMUNOMODULATOR, "adalimumab"),
    "214555": (MedicationKind.IMMUNOMODULATOR, "etanercept"),
}
_NAMES: Final[dict[str, MedicationKind]] = {
    **{name: kind for kind, name in _RXNORM.values()},
    "golimumab": MedicationKind.IMMUNOMODULATOR,
    "certolizumab": MedicationKind.IMMUNOMODULATOR,
    "secukinumab": MedicationKind.IMMUNOMODULATOR,
    "ixekizumab": MedicationKind.IMMUNOMODULATOR,
    "rituximab": MedicationKind.IMMUNOMODULATOR,
}
_NAME_PATTERN = re.compile(r"\b(" + "|".join(sorted(_NAMES)) + r")\b", re.I)


def medication_concepts(resource: Any) -> list[Any]:
    """The medication CodeableConcepts of a MedicationRequest/Statement, contained Medication included."""
    concept = resource.medicationCodeableConcept
    if concept is not None:
        return [concept]
    reference = resource.medicationReference
    target = (reference.reference or "").lstrip("#") if reference is not None else ""
    return [
        c.code
        for c in resource.contained or []
        if c.get_resource_type() == "Medication" and c.id == target and c.code is not None
    ]


def concept_texts(concept: Any) -> Iterable[str]:
    """The human-readable labels of a CodeableConcept."""
    yield from (t for t in [concept.text] + [c.display for c in concept.coding or []] if t)


def classify_medication(concept: Any) -> tuple[MedicationKind, str] | None:
    """The class and our label for a medication concept: RxNorm code first, then ingredient name."""
    for coding in concept.coding or []:
        if coding.system == codes.RXNORM and coding.code in _RXNORM:
            return _RXNORM[coding.code]
    for text in concept_texts(concept):
        match = _NAME_PATTERN.search(text)
        if match:
            name = match.group(1).lower()
            return _NAMES[name], name
    return None


def extract_medications(resources: list[Any]) -> list[MedicationFact]:
    """Glucocorticoid and immunomodulator exposures from MedicationRequests and MedicationStatements."""
    facts: list[MedicationFact] = []
    for resource in resources:
        if resource.status == "entered-in-error":
            continue
        for concept in medication_concepts(resource):
            found = classify_medication(concept)
            if found is not None:
                kind, name = found
                reference = (
                    f"{resource.get_resource_type()}/{resource.id}"
                    if resource.id
                    else resource.get_resource_type()
                )
                facts.append(MedicationFact(kind, reference, name, resource.status not in INACTIVE_STATUSES))
    return facts
