"""Draft orders: which act on a presumed cholangiocarcinoma (CLINICAL_SPEC section 5)."""

from __future__ import annotations

import re
from typing import Any, Final

from cds_service.core import codes
from cds_service.core.conditions import concept_kinds
from cds_service.core.evidence import ConditionKind, DraftOrderFacts, OrderAction
from cds_service.core.medications import concept_texts, medication_concepts

CPT_SYSTEMS: Final = frozenset({codes.CPT, "urn:oid:2.16.840.1.113883.6.12"})
RESECTION_CPT: Final = frozenset(
    {"47120", "47122", "47125", "47130", "48150", "48152", "48153", "48154", "47711", "47712"}
    | {str(c) for c in range(47760, 47786)}
)
_RESECTION_TEXT = re.compile(
    r"\b(hepatectomy|hepatic lobectomy|pancreaticoduodenectomy|whipple|bile duct (?:resection|excision)"
    r"|excision of bile duct tumou?r|hepaticojejunostomy|choledochojejunostomy|cholangiojejunostomy"
    r"|roux-en-y hepatico)",
    re.I,
)
# Systemic therapy for biliary tract cancer. Codes are RxNorm ingredients; names catch the rest.
SYSTEMIC_RXNORM: Final[dict[str, str]] = {
    "12574": "gemcitabine",
    "2555": "cisplatin",
    "194000": "capecitabine",
    "32592": "oxaliplatin",
    "4492": "fluorouracil",
    "1547545": "pembrolizumab",
    "1919503": "durvalumab",
}
_SYSTEMIC_TEXT = re.compile(
    r"\b(gemcitabine|cisplatin|capecitabine|oxaliplatin|fluorouracil|5-?fu|durvalumab|pembrolizumab"
    r"|ivosidenib|pemigatinib|futibatinib|infigratinib|zanidatamab|folfox)\b",
    re.I,
)
_REFERRAL_TEXT = re.compile(r"\b(referral|refer|consult(?:ation)?)\b", re.I)
_REFERRAL_SNOMED: Final = frozenset({"3457005", "306206005"})
_ONCOLOGY_TEXT = re.compile(
    r"\b(oncolog\w*|hepato-?biliary|hpb|surgical oncology|liver surgery|transplant surgery)\b", re.I
)
# A stricture reason names both a stricture and the bile ducts; two searches keep it linear in the text.
_STRICTURE_WORD = re.compile(r"\bstricture", re.I)
_BILIARY_WORD = re.compile(r"\b(?:bil|bile duct|hilar|cbd|hepatic duct)", re.I)
STRICTURE_ICD10: Final = frozenset({"K83.1"})


def _codings(concept: Any) -> list[Any]:
    return list(concept.coding or []) if concept is not None else []


def _label_texts(resource: Any) -> list[str]:
    concepts = [resource.code, *(resource.category or []), resource.performerType]
    return [text for concept in concepts if concept is not None for text in concept_texts(concept)]


def _reasons(resource: Any, cca_condition_refs: frozenset[str]) -> tuple[bool, bool]:
    """(reason names cholangiocarcinoma, reason names a biliary stricture) from reasonCode/reasonReference."""
    cca = stricture = False
    for concept in resource.reasonCode or []:
        kinds, _ = concept_kinds(concept)
        cca |= ConditionKind.CHOLANGIOCARCINOMA in kinds
        stricture |= any(c.system == codes.ICD10CM and c.code in STRICTURE_ICD10 for c in _codings(concept))
        stricture |= any(
            _STRICTURE_WORD.search(t) and _BILIARY_WORD.search(t) for t in concept_texts(concept)
        )
    cca |= any(ref.reference in cca_condition_refs for ref in resource.reasonReference or [] if ref.reference)
    return cca, stricture


def _service_request_actions(resource: Any) -> tuple[set[OrderAction], str]:
    actions: set[OrderAction] = set()
    label = ""
    codings = _codings(resource.code)
    cpts = sorted(c.code for c in codings if c.system in CPT_SYSTEMS and c.code in RESECTION_CPT)
    if cpts:
        actions.add(OrderAction.RESECTION)
        label = f"CPT {cpts[0]}"
    texts = _label_texts(resource)
    code_texts = list(concept_texts(resource.code)) if resource.code is not None else []
    if not cpts and any(_RESECTION_TEXT.search(t) for t in code_texts):
        actions.add(OrderAction.RESECTION)
        label = "resection"
    is_referral = any(c.system == codes.SNOMED and c.code in _REFERRAL_SNOMED for c in codings) or any(
        _REFERRAL_TEXT.search(t) for t in texts
    )
    if is_referral and any(_ONCOLOGY_TEXT.search(t) for t in texts):
        actions.add(OrderAction.REFERRAL)
        label = label or "oncology or hepatobiliary referral"
    return actions, label


def _medication_request_actions(resource: Any) -> tuple[set[OrderAction], str]:
    for concept in medication_concepts(resource):
        for coding in _codings(concept):
            if coding.system == codes.RXNORM and coding.code in SYSTEMIC_RXNORM:
                return {OrderAction.SYSTEMIC_THERAPY}, SYSTEMIC_RXNORM[coding.code]
        for text in concept_texts(concept):
            match = _SYSTEMIC_TEXT.search(text)
            if match:
                return {OrderAction.SYSTEMIC_THERAPY}, match.group(1).lower()
    return set(), ""


def classify_order(resource: Any, cca_condition_refs: frozenset[str] = frozenset()) -> DraftOrderFacts:
    """Whether a draft ServiceRequest or MedicationRequest acts on a presumed cholangiocarcinoma."""
    if resource.get_resource_type() == "MedicationRequest":
        actions, label = _medication_request_actions(resource)
    else:
        actions, label = _service_request_actions(resource)
    # Either reason makes the order act on the presumption; only a CCA reason raises the presumption itself.
    reason_cca, reason_stricture = _reasons(resource, cca_condition_refs)
    if reason_cca or reason_stricture:
        actions.add(OrderAction.REASON)
        label = label or "order with reason cholangiocarcinoma or biliary stricture"
    reference = (
        f"{resource.get_resource_type()}/{resource.id}" if resource.id else resource.get_resource_type()
    )
    return DraftOrderFacts(reference, frozenset(actions), reason_cca, label)
