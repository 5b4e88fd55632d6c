"""Tolerant reading of FHIR R4 resources, element by element (CLINICAL_SPEC section 4).

Each resource is projected to the few elements the clinical core reads, into small frozen dataclasses that
keep FHIR's element names (``code.coding[].system``, ``valueQuantity.value``...). Every element is checked
on its own: an element that breaks R4 costs that element only, never the resource and never the call.
Common EHR deviations are repaired on the way and counted:

- a single object where R4 has an array (the CDS Hooks sandbox's draft ``MedicationRequest.category`` and
  ``reasonCode``), or an array of one where R4 has a single object;
- a number sent as a string (``"value": "2.43"``), a code sent as a number;
- a missing element R4 requires but the decision does not use (``MedicationRequest.intent``, ``subject``):
  counted as missing, never a reason to drop the resource.

Nothing else of a resource is validated or even looked at, which is also what keeps reading fast: the cost
is a few dictionary look-ups per element the core uses, whatever the size of the resource. Counts are kept
per resource type and kind of event (:class:`ReadCounts`), never with content, for the hook's log line.
"""

from cds_service.core.resources.projected import (
    Attachment,
    CodeableConcept,
    Coding,
    Condition,
    DiagnosticReport,
    Medication,
    MedicationRequest,
    MedicationStatement,
    Observation,
    Period,
    Quantity,
    Reference,
    ReferenceRange,
    ServiceRequest,
)
from cds_service.core.resources.projections import (
    PROJECTIONS,
    RawFilter,
    iter_raw_resources,
    read_resource,
    read_resources,
)
from cds_service.core.resources.reader import MAX_LABEL_CHARS, MAX_NUMBER_CHARS, MAX_SHORT_CHARS, ReadCounts

__all__ = [
    "MAX_LABEL_CHARS",
    "MAX_NUMBER_CHARS",
    "MAX_SHORT_CHARS",
    "PROJECTIONS",
    "Attachment",
    "CodeableConcept",
    "Coding",
    "Condition",
    "DiagnosticReport",
    "Medication",
    "MedicationRequest",
    "MedicationStatement",
    "Observation",
    "Period",
    "Quantity",
    "RawFilter",
    "ReadCounts",
    "Reference",
    "ReferenceRange",
    "ServiceRequest",
    "iter_raw_resources",
    "read_resource",
    "read_resources",
]
