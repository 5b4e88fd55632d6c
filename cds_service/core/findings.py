"""What the narrative reader finds in imaging and pathology text: concepts with their assertion status.

This module is the contract between ``narrative`` (text -> findings) and ``criteria`` (findings -> points).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Concept(StrEnum):
    """A finding in report text that maps to an ACR/EULAR item, an exclusion or the CCA presumption."""

    # pancreas-biliary domain
    PANCREAS_DIFFUSE_ENLARGEMENT = "pancreas-diffuse-enlargement"
    """Diffuse pancreatic enlargement / sausage-shaped pancreas / loss of lobulation / diffuse soft tissue."""
    PANCREAS_CAPSULE_RIM = "pancreas-capsule-rim"
    """Capsule-like rim (halo) of decreased enhancement around the pancreas."""
    PANCREAS_FOCAL_MASS = "pancreas-focal-mass"
    """A focal pancreatic mass or focal enlargement: scores nothing."""
    BILIARY_PROXIMAL = "biliary-proximal"
    """Stricture, narrowing or wall thickening of intrahepatic, hilar, common hepatic or proximal/mid CBD."""
    BILIARY_DISTAL = "biliary-distal"
    """Stricture of the intrapancreatic (distal) common bile duct only: not biliary involvement."""
    # glands domain (bilateral required)
    LACRIMAL_GLAND = "lacrimal-gland"
    PAROTID_GLAND = "parotid-gland"
    SUBMANDIBULAR_GLAND = "submandibular-gland"
    SUBLINGUAL_GLAND = "sublingual-gland"
    # chest domain
    PERIBRONCHOVASCULAR_THICKENING = "peribronchovascular-septal-thickening"
    PARAVERTEBRAL_BAND = "paravertebral-band"
    # kidney domain
    RENAL_PELVIS_THICKENING = "renal-pelvis-thickening"
    RENAL_CORTEX_LOW_DENSITY = "renal-cortex-low-density"
    """Renal (cortical/parenchymal) low-density or hypoenhancing areas; bilateral required to score."""
    # retroperitoneum domain
    ABDOMINAL_AORTIC_WALL_THICKENING = "abdominal-aortic-wall-thickening"
    PERIAORTIC_SOFT_TISSUE = "periaortic-soft-tissue"
    """Circumferential/anterolateral soft tissue around the infrarenal aorta or iliac arteries."""
    THORACIC_AORTA = "thoracic-aorta"
    """Thoracic aortitis or periaortitis: entry involvement, never retroperitoneum points."""
    # histopathology and immunostaining
    LYMPHOPLASMACYTIC_INFILTRATE = "lymphoplasmacytic-infiltrate"
    OBLITERATIVE_PHLEBITIS = "obliterative-phlebitis"
    STORIFORM_FIBROSIS = "storiform-fibrosis"
    IGG4_IMMUNOSTAIN = "igg4-immunostain"
    """IgG4 immunostaining; ``ratio_percent`` and ``cells_per_hpf`` carry the numbers when stated."""
    # text-assessed exclusions
    RAPID_PROGRESSION = "rapid-progression"
    ERDHEIM_CHESTER = "erdheim-chester"
    SPLENOMEGALY = "splenomegaly"
    ATYPIA = "atypia"
    """Atypia or infiltrates suggesting malignancy not sufficiently evaluated (suspicious-pathology)."""
    PATHOLOGY_OTHER = "pathology-other"
    """IMT markers, neutrophilic inflammation, necrotizing vasculitis, necrosis, granulomas, histiocytosis."""
    # malignancy
    CARCINOMA = "carcinoma"
    """Carcinoma or adenocarcinoma stated in text (tissue-proven only when in a pathology report)."""
    CHOLANGIOCARCINOMA = "cholangiocarcinoma"
    """Cholangiocarcinoma, Klatskin tumour or malignant biliary stricture named (asserted or suspected)."""


class Assertion(StrEnum):
    """How a mention is asserted. Only ``affirmed`` findings score points."""

    AFFIRMED = "affirmed"
    NEGATED = "negated"
    UNCERTAIN = "uncertain"
    """Hedged: "possible", "suspicious for", "cannot exclude", "may represent"."""
    HYPOTHETICAL = "hypothetical"
    """Conditional or future: "if", "to rule out", "recommend evaluation for"."""
    HISTORICAL = "historical"
    """Past history: "history of", "previously", "prior"."""


class Laterality(StrEnum):
    """Side of a paired organ when the text states it."""

    LEFT = "left"
    RIGHT = "right"
    BILATERAL = "bilateral"


@dataclass(frozen=True, slots=True)
class TextFinding:
    """One concept found in one sentence of report text.

    ``phrase`` is record text (the sentence it came from): render it escaped, never log it.
    """

    concept: Concept
    assertion: Assertion
    phrase: str
    laterality: Laterality | None = None
    ratio_percent: float | None = None
    cells_per_hpf: float | None = None
    detail: str | None = None
    """A short machine label refining the concept, e.g. which ``pathology-other`` feature ("granulomatous")."""
    section: str | None = None
    """The report section the mention was read in ("findings", "impression", "diagnosis", "microscopic", ...),
    when the text has headings. Mentions under history, indication, comparison or technique headings are never
    findings, so they never reach this type."""

    @property
    def affirmed(self) -> bool:
        """True when the mention is asserted as present."""
        return self.assertion is Assertion.AFFIRMED

    @property
    def bilateral(self) -> bool:
        """True when the text states the finding is bilateral."""
        return self.laterality is Laterality.BILATERAL
