"""Code systems and the code sets of CLINICAL_SPEC section 4 and 5. Pure data, no logic."""

from __future__ import annotations

from typing import Final

LOINC: Final = "http://loinc.org"
SNOMED: Final = "http://snomed.info/sct"
ICD10CM: Final = "http://hl7.org/fhir/sid/icd-10-cm"
CPT: Final = "http://www.ama-assn.org/go/cpt"
RXNORM: Final = "http://www.nlm.nih.gov/research/umls/rxnorm"
V2_0074: Final = "http://terminology.hl7.org/CodeSystem/v2-0074"

# Labs scored or assessed (section 4).
IGG4: Final = "2469-5"
IGG_TOTAL: Final = "2465-3"
IGG1: Final = "2466-1"
C3: Final = "4485-9"
C4: Final = "4498-2"
EOS_ABSOLUTE: Final = frozenset({"711-2", "26449-9"})
EOS_PERCENT: Final = "713-8"
WBC: Final = "6690-2"
PLATELETS: Final = "777-3"
ANCA_MPO: Final = "46266-3"
ANCA_PR3: Final = "46267-1"
SSA: Final = frozenset({"33569-5", "17792-3", "8093-7"})
SSB: Final = frozenset({"45142-7", "17791-5", "8094-5"})
DSDNA: Final = frozenset({"5130-0", "31348-6"})
RNP: Final = frozenset({"29374-6", "51928-0", "8091-1"})
SM: Final = frozenset({"11090-8", "43182-5", "31627-3"})
CRYOGLOBULIN: Final = "5117-7"

# Context labs shown on the card, never scored (section 4).
CONTEXT_LABS: Final[dict[str, str]] = {
    "1742-6": "ALT",
    "1920-8": "AST",
    "6768-6": "ALP",
    "2324-2": "GGT",
    "1798-8": "Amylase",
    "3040-3": "Lipase",
    "1975-2": "Bilirubin",
    "14631-6": "Bilirubin",
    "2039-6": "CEA",
    "1834-1": "AFP",
    "24108-3": "CA 19-9",
}

SCORED_LABS: Final = frozenset(
    {IGG4, IGG_TOTAL, IGG1, C3, C4, EOS_PERCENT, WBC, PLATELETS, ANCA_MPO, ANCA_PR3, CRYOGLOBULIN}
    | EOS_ABSOLUTE
    | SSA
    | SSB
    | DSDNA
    | RNP
    | SM
)

ALL_LABS: Final = SCORED_LABS | frozenset(CONTEXT_LABS)
"""Every LOINC code the core reads; the Observation prefetch template asks for exactly these."""

# DiagnosticReport categories asked for: US Core LOINC Radiology and Pathology, and HL7 v2 sections.
REPORT_CATEGORIES: Final[tuple[tuple[str, str], ...]] = (
    (LOINC, "LP29684-5"),
    (LOINC, "LP7839-6"),
    (V2_0074, "RAD"),
    (V2_0074, "PAT"),
    (V2_0074, "SP"),
    (V2_0074, "CT"),
    (V2_0074, "MR"),
    (V2_0074, "US"),
)
