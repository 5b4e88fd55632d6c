"""Diagnoses from Conditions: codes first (SNOMED CT, ICD-10-CM), then text (CLINICAL_SPEC section 4)."""

from __future__ import annotations

import re
from typing import Any, Final

from cds_service.core import codes
from cds_service.core.dates import to_date
from cds_service.core.evidence import ConditionFact, ConditionKind

SKIPPED_VERIFICATION: Final = frozenset({"refuted", "entered-in-error"})
INACTIVE_CLINICAL: Final = frozenset({"inactive", "remission", "resolved"})

_SNOMED: Final[dict[str, ConditionKind]] = {
    "9631008": ConditionKind.ANKYLOSING_SPONDYLITIS,
    "312104005": ConditionKind.CHOLANGIOCARCINOMA,
    "64766004": ConditionKind.ULCERATIVE_COLITIS,
    "34000006": ConditionKind.CROHNS_DISEASE,
    # Biliary stricture (disorder), as the CDS Hooks sandbox codes it (shared/reference sandbox capture
    # pama-hepatobiliary-imaging-for-biliary-stricture.json); the SNOMED counterpart of ICD-10-CM K83.1 here.
    "235921003": ConditionKind.BILIARY_STRICTURE,
}

_ICD10_EXACT: Final[dict[str, ConditionKind]] = {
    "M08.1": ConditionKind.ANKYLOSING_SPONDYLITIS,
    "C22.1": ConditionKind.CHOLANGIOCARCINOMA,
    "C24.0": ConditionKind.CHOLANGIOCARCINOMA,
    "C24.8": ConditionKind.CHOLANGIOCARCINOMA,
    "C24.9": ConditionKind.CHOLANGIOCARCINOMA,
    "D89.84": ConditionKind.IGG4_RD,
    "D47.Z2": ConditionKind.CASTLEMAN,
    "K83.1": ConditionKind.BILIARY_STRICTURE,
}
# ICD-10-CM categories matched with every subcode (M45.0-M45.9, M45.A*, K50.*, K51.*).
_ICD10_PREFIX: Final[tuple[tuple[str, ConditionKind], ...]] = (
    ("M45", ConditionKind.ANKYLOSING_SPONDYLITIS),
    ("K50", ConditionKind.CROHNS_DISEASE),
    ("K51", ConditionKind.ULCERATIVE_COLITIS),
)

_TEXT: Final[tuple[tuple[re.Pattern[str], ConditionKind], ...]] = (
    (re.compile(r"\bankylosing spondyl", re.I), ConditionKind.ANKYLOSING_SPONDYLITIS),
    (re.compile(r"\bbechterew", re.I), ConditionKind.ANKYLOSING_SPONDYLITIS),
    (
        re.compile(
            r"\bcholangiocarcinoma|\bklatskin|\bbile duct (?:carcinoma|cancer|adenocarcinoma)"
            r"|\bcarcinoma of (?:the )?bile duct",
            re.I,
        ),
        ConditionKind.CHOLANGIOCARCINOMA,
    ),
    (re.compile(r"\big\s?g4[- ]related|\big\s?g4[- ]rd\b", re.I), ConditionKind.IGG4_RD),
    (
        re.compile(r"\bulcerative (?:pan)?colitis|\bulcerative proctitis", re.I),
        ConditionKind.ULCERATIVE_COLITIS,
    ),
    (re.compile(r"\bcrohn", re.I), ConditionKind.CROHNS_DISEASE),
    (re.compile(r"\bmulticentric castleman", re.I), ConditionKind.CASTLEMAN),
    (
        re.compile(
            r"\b(?:biliary|bile duct|hilar|cbd|common hepatic duct)\s+(?:\w+\s+){0,2}?stricture", re.I
        ),
        ConditionKind.BILIARY_STRICTURE,
    ),
)


def code_kind(system: str | None, code: str | None) -> ConditionKind | None:
    """The diagnosis a single coding names, if it is one the core uses."""
    if not code:
        return None
    if system == codes.SNOMED:
        return _SNOMED.get(code)
    if system == codes.ICD10CM:
        normalised = code.strip().upper()
        if normalised in _ICD10_EXACT:
            return _ICD10_EXACT[normalised]
        for prefix, kind in _ICD10_PREFIX:
            if normalised.startswith(prefix):
                return kind
    return None


def text_kind(text: str) -> ConditionKind | None:
    """The diagnosis a free-text label names, if any (used only when no known code matched)."""
    for pattern, kind in _TEXT:
        if pattern.search(text):
            return kind
    return None


def concept_kinds(concept: Any) -> tuple[set[ConditionKind], str]:
    """Diagnoses named by a CodeableConcept: by code when any coding matches, else by its texts."""
    if concept is None:
        return set(), ""
    codings = concept.coding or []
    kinds = {k for c in codings if (k := code_kind(c.system, c.code)) is not None}
    if kinds:
        return kinds, "code"
    texts = [concept.text or ""] + [c.display or "" for c in codings]
    kinds = {k for t in texts if t and (k := text_kind(t)) is not None}
    return kinds, "text" if kinds else ""


def _status(concept: Any) -> str | None:
    for coding in (concept.coding or []) if concept is not None else []:
        if coding.code:
            return str(coding.code)
    return None


def extract_conditions(conditions: list[Any]) -> list[ConditionFact]:
    """The Conditions the core uses; refuted and entered-in-error ones are skipped."""
    facts: list[ConditionFact] = []
    for condition in conditions:
        verification = _status(condition.verificationStatus)
        if verification in SKIPPED_VERIFICATION:
            continue
        clinical = _status(condition.clinicalStatus)
        kinds, matched_by = concept_kinds(condition.code)
        onset = to_date(condition.onsetDateTime) or to_date(condition.recordedDate)
        reference = f"Condition/{condition.id}" if condition.id else "Condition"
        facts.extend(
            ConditionFact(kind, reference, clinical not in INACTIVE_CLINICAL, verification, onset, matched_by)
            for kind in sorted(kinds)
        )
    return facts
