"""The projected FHIR datatypes and resources: small frozen dataclasses that keep FHIR's element names."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

# The projections. Element names are FHIR's, so a reader reads ``obs.valueQuantity.value`` either way.


@dataclass(frozen=True, slots=True)
class Coding:
    """FHIR Coding (the elements the core reads)."""

    system: str | None = None
    code: str | None = None
    display: str | None = None


@dataclass(frozen=True, slots=True)
class CodeableConcept:
    """FHIR CodeableConcept."""

    coding: tuple[Coding, ...] = ()
    text: str | None = None


@dataclass(frozen=True, slots=True)
class Quantity:
    """FHIR Quantity."""

    value: Decimal | None = None
    comparator: str | None = None
    unit: str | None = None
    system: str | None = None
    code: str | None = None


@dataclass(frozen=True, slots=True)
class Reference:
    """FHIR Reference (literal reference only)."""

    reference: str | None = None


@dataclass(frozen=True, slots=True)
class Period:
    """FHIR Period, as dates."""

    start: date | None = None
    end: date | None = None


@dataclass(frozen=True, slots=True)
class ReferenceRange:
    """Observation.referenceRange."""

    low: Quantity | None = None
    high: Quantity | None = None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class Attachment:
    """FHIR Attachment (inline data only)."""

    contentType: str | None = None  # noqa: N815 - FHIR's element name
    data: str | None = None


class _Resource:
    """What every projection answers, like fhir.resources models do."""

    __slots__ = ()
    resource_type: str = ""

    def get_resource_type(self) -> str:
        """The FHIR resource type."""
        return self.resource_type


@dataclass(frozen=True, slots=True)
class Observation(_Resource):
    """The elements of an Observation that the lab reader uses."""

    id: str | None = None
    status: str | None = None
    code: CodeableConcept | None = None
    effectiveDateTime: date | None = None  # noqa: N815 - FHIR's element names from here on
    effectivePeriod: Period | None = None  # noqa: N815
    effectiveInstant: date | None = None  # noqa: N815
    issued: date | None = None
    valueQuantity: Quantity | None = None  # noqa: N815
    valueString: str | None = None  # noqa: N815
    valueCodeableConcept: CodeableConcept | None = None  # noqa: N815
    interpretation: tuple[CodeableConcept, ...] = ()
    referenceRange: tuple[ReferenceRange, ...] = ()  # noqa: N815
    resource_type = "Observation"


@dataclass(frozen=True, slots=True)
class Condition(_Resource):
    """The elements of a Condition that the diagnosis reader uses."""

    id: str | None = None
    code: CodeableConcept | None = None
    clinicalStatus: CodeableConcept | None = None  # noqa: N815
    verificationStatus: CodeableConcept | None = None  # noqa: N815
    onsetDateTime: date | None = None  # noqa: N815
    recordedDate: date | None = None  # noqa: N815
    resource_type = "Condition"


@dataclass(frozen=True, slots=True)
class DiagnosticReport(_Resource):
    """The elements of a DiagnosticReport that the report reader uses."""

    id: str | None = None
    status: str | None = None
    category: tuple[CodeableConcept, ...] = ()
    code: CodeableConcept | None = None
    effectiveDateTime: date | None = None  # noqa: N815
    effectivePeriod: Period | None = None  # noqa: N815
    issued: date | None = None
    conclusion: str | None = None
    conclusionCode: tuple[CodeableConcept, ...] = ()  # noqa: N815
    presentedForm: tuple[Attachment, ...] = ()  # noqa: N815
    resource_type = "DiagnosticReport"


@dataclass(frozen=True, slots=True)
class Medication(_Resource):
    """A contained Medication: its id and code."""

    id: str | None = None
    code: CodeableConcept | None = None
    resource_type = "Medication"


@dataclass(frozen=True, slots=True)
class MedicationRequest(_Resource):
    """The elements of a MedicationRequest (draft order or history) that the core uses."""

    id: str | None = None
    status: str | None = None
    intent: str | None = None
    medicationCodeableConcept: CodeableConcept | None = None  # noqa: N815
    medicationReference: Reference | None = None  # noqa: N815
    contained: tuple[Medication, ...] = ()
    category: tuple[CodeableConcept, ...] = ()
    reasonCode: tuple[CodeableConcept, ...] = ()  # noqa: N815
    reasonReference: tuple[Reference, ...] = ()  # noqa: N815
    resource_type = "MedicationRequest"


@dataclass(frozen=True, slots=True)
class MedicationStatement(_Resource):
    """The elements of a MedicationStatement that the medication reader uses."""

    id: str | None = None
    status: str | None = None
    medicationCodeableConcept: CodeableConcept | None = None  # noqa: N815
    medicationReference: Reference | None = None  # noqa: N815
    contained: tuple[Medication, ...] = ()
    resource_type = "MedicationStatement"


@dataclass(frozen=True, slots=True)
class ServiceRequest(_Resource):
    """The elements of a draft ServiceRequest that the order reader uses."""

    id: str | None = None
    status: str | None = None
    intent: str | None = None
    code: CodeableConcept | None = None
    category: tuple[CodeableConcept, ...] = ()
    performerType: CodeableConcept | None = None  # noqa: N815
    reasonCode: tuple[CodeableConcept, ...] = ()  # noqa: N815
    reasonReference: tuple[Reference, ...] = ()  # noqa: N815
    resource_type = "ServiceRequest"
