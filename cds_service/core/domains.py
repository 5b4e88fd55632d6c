"""The eight ACR/EULAR inclusion domains: ids, maxima, labels and the report concepts that belong to each."""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from cds_service.core.findings import Concept


class Domain(StrEnum):
    """The eight weighted inclusion domains."""

    HISTOPATHOLOGY = "histopathology"
    IMMUNOSTAINING = "immunostaining"
    SERUM_IGG4 = "serum-igg4"
    GLANDS = "glands"
    CHEST = "chest"
    PANCREAS_BILIARY = "pancreas-biliary"
    KIDNEY = "kidney"
    RETROPERITONEUM = "retroperitoneum"


DOMAIN_MAXIMUM: Final[dict[Domain, int]] = {
    Domain.HISTOPATHOLOGY: 13,
    Domain.IMMUNOSTAINING: 16,
    Domain.SERUM_IGG4: 11,
    Domain.GLANDS: 14,
    Domain.CHEST: 10,
    Domain.PANCREAS_BILIARY: 19,
    Domain.KIDNEY: 10,
    Domain.RETROPERITONEUM: 8,
}

DOMAIN_LABELS: Final[dict[Domain, str]] = {
    Domain.HISTOPATHOLOGY: "Histopathology",
    Domain.IMMUNOSTAINING: "Immunostaining",
    Domain.SERUM_IGG4: "Serum IgG4",
    Domain.GLANDS: "Lacrimal/salivary glands",
    Domain.CHEST: "Chest",
    Domain.PANCREAS_BILIARY: "Pancreas and biliary tree",
    Domain.KIDNEY: "Kidney",
    Domain.RETROPERITONEUM: "Retroperitoneum",
}

# Concepts whose mention (any assertion) shows that imaging looked at a domain.
DOMAIN_CONCEPTS: Final[dict[Domain, frozenset[Concept]]] = {
    Domain.GLANDS: frozenset(
        {Concept.LACRIMAL_GLAND, Concept.PAROTID_GLAND, Concept.SUBMANDIBULAR_GLAND, Concept.SUBLINGUAL_GLAND}
    ),
    Domain.CHEST: frozenset({Concept.PERIBRONCHOVASCULAR_THICKENING, Concept.PARAVERTEBRAL_BAND}),
    Domain.PANCREAS_BILIARY: frozenset(
        {
            Concept.PANCREAS_DIFFUSE_ENLARGEMENT,
            Concept.PANCREAS_CAPSULE_RIM,
            Concept.PANCREAS_FOCAL_MASS,
            Concept.BILIARY_PROXIMAL,
            Concept.BILIARY_DISTAL,
        }
    ),
    Domain.KIDNEY: frozenset({Concept.RENAL_PELVIS_THICKENING, Concept.RENAL_CORTEX_LOW_DENSITY}),
    Domain.RETROPERITONEUM: frozenset(
        {Concept.ABDOMINAL_AORTIC_WALL_THICKENING, Concept.PERIAORTIC_SOFT_TISSUE}
    ),
}

# Affirmed findings that show involvement of a typical organ (entry criterion).
ENTRY_CONCEPTS: Final = frozenset(
    set().union(*DOMAIN_CONCEPTS.values())
    | {Concept.THORACIC_AORTA, Concept.LYMPHOPLASMACYTIC_INFILTRATE, Concept.CHOLANGIOCARCINOMA}
)
# Organs beyond the pancreas and bile ducts (the IBD exclusion applies only without them).
OTHER_ORGAN_CONCEPTS: Final = frozenset(
    DOMAIN_CONCEPTS[Domain.GLANDS]
    | DOMAIN_CONCEPTS[Domain.CHEST]
    | DOMAIN_CONCEPTS[Domain.KIDNEY]
    | DOMAIN_CONCEPTS[Domain.RETROPERITONEUM]
)
