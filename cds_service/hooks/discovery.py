"""The CDS services this product offers and the discovery document that lists them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from cds_service.errors import UnknownServiceError
from cds_service.hooks.queries import QUERIES


@dataclass(frozen=True)
class ServiceDefinition:
    """One CDS service: its id, the hook it answers and how discovery describes it."""

    id: str
    hook: str
    title: str
    description: str


SERVICES: Final[tuple[ServiceDefinition, ...]] = (
    ServiceDefinition(
        "igg4rd-order-sign",
        "order-sign",
        "IgG4-related disease check before cholangiocarcinoma treatment",
        "When orders that act on a presumed cholangiocarcinoma (resection, systemic therapy, oncology or "
        "hepatobiliary referral) are signed, scores the 2019 ACR/EULAR IgG4-RD classification criteria from "
        "the record and suggests considering IgG4-related disease, with the evidence and the missing tests.",
    ),
    ServiceDefinition(
        "igg4rd-order-select",
        "order-select",
        "IgG4-related disease check when cholangiocarcinoma treatment is selected",
        "The same check as at signing, shown as soon as an order acting on a presumed cholangiocarcinoma is "
        "selected.",
    ),
    ServiceDefinition(
        "igg4rd-patient-view",
        "patient-view",
        "IgG4-related disease check for a presumed cholangiocarcinoma",
        "On opening the chart of a patient with a presumed (not tissue-proven) cholangiocarcinoma, scores the "
        "2019 ACR/EULAR IgG4-RD classification criteria and suggests considering IgG4-related disease.",
    ),
)
SERVICES_BY_ID: Final[dict[str, ServiceDefinition]] = {s.id: s for s in SERVICES}
SERVICE_FOR_HOOK: Final[dict[str, str]] = {s.hook: s.id for s in SERVICES}
"""Hook name -> the id of the service that answers it (one service per hook)."""


def find_service(service_id: str) -> ServiceDefinition:
    """The service with this id; :class:`UnknownServiceError` (404) when there is none. The one check."""
    service = SERVICES_BY_ID.get(service_id)
    if service is None:
        raise UnknownServiceError(f"no CDS service with id '{service_id}'")
    return service


def prefetch_templates() -> dict[str, str]:
    """Prefetch key -> FHIR query template, using only the ``{{context.patientId}}`` token."""
    return {q.key: q.template for q in QUERIES}


def discovery_document() -> dict[str, Any]:
    """The ``GET /cds-services`` response body."""
    templates = prefetch_templates()
    return {
        "services": [
            {
                "hook": s.hook,
                "title": s.title,
                "description": s.description,
                "id": s.id,
                "prefetch": templates,
                "usageRequirements": (
                    "Calls are authenticated with a signed JWT per CDS Hooks 2.0. Prefetch or a FHIR server "
                    "access token with read access to Patient, Condition, Observation, DiagnosticReport, "
                    "MedicationRequest and MedicationStatement."
                ),
            }
            for s in SERVICES
        ]
    }
