"""Draft orders: which act on a presumed cholangiocarcinoma (CLINICAL_SPEC section 5)."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, Final

from cds_service.core import codes
from cds_service.core.conditions import concept_kinds
from cds_service.core.evidence import ConditionKind, DraftOrderFacts, OrderAction
from cds_service.core.medications import concept_texts, medication_concepts
from cds_service.core.tissue import OTHER_SITES, sites_in

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
# Systemic therapy for biliary tract cancer (CLINICAL_SPEC section 5). Codes are RxNorm ingredients
# (12574 and 2555 are given by the spec); ivosidenib, pemigatinib and futibatinib are matched by name
# (ingredient or clinical drug whose text/display names them) until their ingredient codes are verified.
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
STRICTURE_SNOMED: Final = frozenset({"235921003"})
"""Biliary stricture (disorder), coded so by the CDS Hooks sandbox (shared/reference sandbox captures)."""
_NOT_ANOTHER_CANCER_ICD10 = re.compile(r"^(?:C22\.1|C23|C24|C25|C7[6-9]|C80)", re.I)
"""Biliary and pancreatic cancers, and unspecified or secondary sites: not "another cancer"."""
_CANCER_TEXT = re.compile(
    r"\b(?:\w*carcinoma|cancer|malignan\w*|neoplasm|tumou?r|lymphoma|leuk(?:a)?emia|myeloma|sarcoma"
    r"|melanoma|metasta\w*)",
    re.I,
)
_OTHER_CANCER_TYPES = re.compile(
    r"\b(?:lymphoma|leuk(?:a)?emia|myeloma|melanoma|\w*sarcoma|glioma|glioblastoma|mesothelioma|seminoma"
    r"|small[- ]cell)",
    re.I,
)
_BILIARY_TEXT = re.compile(
    r"\b(?:biliary|bile duct|cholangio\w*|klatskin|gall\s*bladder|hilar|ampull\w*)", re.I
)


def _codings(concept: Any) -> list[Any]:
    return list(concept.coding or []) if concept is not None else []


def _label_texts(resource: Any) -> list[str]:
    concepts = [resource.code, *(resource.category or []), resource.performerType]
    return [text for concept in concepts if concept is not None for text in concept_texts(concept)]


REASON_LABEL: Final = "order with reason cholangiocarcinoma or biliary stricture"


def _is_stricture_coding(coding: Any) -> bool:
    return (coding.system == codes.ICD10CM and coding.code in STRICTURE_ICD10) or (
        coding.system == codes.SNOMED and coding.code in STRICTURE_SNOMED
    )


def _reasons(resource: Any) -> tuple[bool, bool]:
    """(reason names cholangiocarcinoma, reason names a biliary stricture) from reasonCode."""
    cca = stricture = False
    for concept in resource.reasonCode or []:
        kinds, _ = concept_kinds(concept)
        cca |= ConditionKind.CHOLANGIOCARCINOMA in kinds
        stricture |= any(_is_stricture_coding(c) for c in _codings(concept))
        stricture |= any(
            _STRICTURE_WORD.search(t) and _BILIARY_WORD.search(t) for t in concept_texts(concept)
        )
    return cca, stricture


def _text_names_another_cancer(text: str) -> bool:
    if not _CANCER_TEXT.search(text) or _BILIARY_TEXT.search(text):
        return False
    return bool(sites_in(text) & OTHER_SITES) or bool(_OTHER_CANCER_TYPES.search(text))


def reason_names_another_cancer(resource: Any) -> bool:
    """True when a reasonCode names a cancer of another site or type (gemcitabine for lung cancer).

    A biliary or pancreatic cancer, or a malignancy without a site ("chemotherapy for malignancy"), is not
    another cancer: the order still acts on the presumption.
    """
    for concept in resource.reasonCode or []:
        kinds, _ = concept_kinds(concept)
        if ConditionKind.CHOLANGIOCARCINOMA in kinds:
            continue
        for coding in _codings(concept):
            code = (coding.code or "").strip().upper()
            is_cancer = coding.system == codes.ICD10CM and code.startswith(("C", "D0"))
            if is_cancer and not _NOT_ANOTHER_CANCER_ICD10.match(code):
                return True
        if any(_text_names_another_cancer(t) for t in concept_texts(concept)):
            return True
    return False


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
    if reason_names_another_cancer(resource):
        return set(), ""  # systemic therapy for another cancer does not act on the presumption
    for concept in medication_concepts(resource):
        for coding in _codings(concept):
            if coding.system == codes.RXNORM and coding.code in SYSTEMIC_RXNORM:
                return {OrderAction.SYSTEMIC_THERAPY}, SYSTEMIC_RXNORM[coding.code]
        for text in concept_texts(concept):
            match = _SYSTEMIC_TEXT.search(text)
            if match:
                return {OrderAction.SYSTEMIC_THERAPY}, match.group(1).lower()
    return set(), ""


def classify_order(
    resource: Any,
    cca_condition_refs: frozenset[str] = frozenset(),
    stricture_condition_refs: frozenset[str] = frozenset(),
) -> DraftOrderFacts:
    """Whether a draft ServiceRequest or MedicationRequest acts on a presumed cholangiocarcinoma.

    Each order is classified once, from the order alone; its ``reasonReference`` targets are resolved
    afterwards by :func:`resolve_reasons` against "Condition/id" of the patient's CCA and biliary stricture
    Conditions (here when they are given), so a reference counts like the code of its Condition (section 5).
    """
    if resource.get_resource_type() == "MedicationRequest":
        actions, label = _medication_request_actions(resource)
    else:
        actions, label = _service_request_actions(resource)
    # Either reason makes the order act on the presumption; only a CCA reason raises the presumption itself.
    reason_cca, reason_stricture = _reasons(resource)
    if reason_cca or reason_stricture:
        actions.add(OrderAction.REASON)
        label = label or REASON_LABEL
    reference = (
        f"{resource.get_resource_type()}/{resource.id}" if resource.id else resource.get_resource_type()
    )
    targets = frozenset(ref.reference for ref in resource.reasonReference or [] if ref.reference)
    facts = DraftOrderFacts(reference, frozenset(actions), reason_cca, label, targets)
    return resolve_reasons(facts, cca_condition_refs, stricture_condition_refs)


def resolve_reasons(
    order: DraftOrderFacts,
    cca_condition_refs: frozenset[str],
    stricture_condition_refs: frozenset[str] = frozenset(),
) -> DraftOrderFacts:
    """The order with its ``reasonReference`` resolved: a reference to the patient's cholangiocarcinoma
    Condition is a CCA reason, one to a biliary stricture Condition a stricture reason (both make it act)."""
    names_cca = bool(order.reason_references & cca_condition_refs)
    names_stricture = bool(order.reason_references & stricture_condition_refs)
    if not (names_cca or names_stricture):
        return order
    return replace(
        order,
        actions=order.actions | {OrderAction.REASON},
        reason_is_cca=order.reason_is_cca or names_cca,
        label=order.label or REASON_LABEL,
    )
