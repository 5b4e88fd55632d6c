"""Rendering an :class:`~cds_service.core.assessment.Assessment` as CDS Hooks 2.0 cards (CLINICAL_SPEC section 6).

Every piece of record text goes through :func:`cds_service.hooks.markdown.escape`; everything else is our own
wording. Empty optional fields are omitted, never sent as ``null`` or ``[]``.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

from cds_service.core import codes
from cds_service.core.assessment import Assessment
from cds_service.core.criteria import CRITERIA_NAME, THRESHOLD, Classification, CriteriaResult
from cds_service.core.domains import DOMAIN_LABELS, Domain
from cds_service.core.evidence import ConditionKind, Evidence, MedicationKind, PatientEvidence
from cds_service.core.exclusions import ExclusionStatus
from cds_service.core.presumption import Indicator
from cds_service.hooks.markdown import escape
from cds_service.hooks.queries import QUERIES_BY_KEY

EXTENSION_KEY: Final = "igg4rd-cds.classification"
PUBLICATION_URL: Final = "https://doi.org/10.1002/art.41120"
SOURCE: Final = {
    "label": "2019 ACR/EULAR classification criteria for IgG4-related disease (Wallace et al. 2020)",
    "url": PUBLICATION_URL,
}
ADVICE: Final = "Consider IgG4-related disease before presuming cholangiocarcinoma"
OVERRIDE_SYSTEM: Final = "https://igg4rd-cds.org/CodeSystem/override-reason"
OVERRIDE_REASONS: Final = (
    ("already-considered", "IgG4-related disease already considered or worked up"),
    ("tissue-result", "Tissue result showing malignancy available outside this record"),
    ("workup-ordered", "IgG4 work-up already ordered"),
    ("not-applicable", "Not applicable to this patient"),
)
CLASSIFICATION_WORDS: Final = {
    Classification.MEETS: "classification criteria met",
    Classification.EXCLUDED: "an exclusion criterion is present",
    Classification.INDETERMINATE: "indeterminate: data missing that could change the result",
    Classification.DOES_NOT_MEET: "criteria not met",
}

_LAB_SUGGESTIONS: Final = {
    codes.IGG4: "Serum IgG4",
    codes.IGG1: "Serum IgG1 (IgG4/IgG1 ratio)",
    codes.IGG_TOTAL: "Serum total IgG",
    codes.C3: "Complement C3",
    codes.C4: "Complement C4",
}


def _uuid() -> str:
    return str(uuid.uuid4())


def summary_line(result: CriteriaResult) -> str:
    """The card summary: the advice and the score, under 140 characters."""
    relation = "≥" if result.total >= THRESHOLD else "<"
    if result.classification is Classification.EXCLUDED:
        return f"{ADVICE}: ACR/EULAR {result.total} points, exclusion present"
    if result.igg4 is None:
        return f"{ADVICE}: serum IgG4 not measured; ACR/EULAR {result.total} points"
    return f"{ADVICE}: ACR/EULAR {result.total} points ({relation} {THRESHOLD})"


def _evidence_text(evidence: Evidence) -> str:
    text = escape(evidence.text) if evidence.is_record_text else escape(evidence.text, limit=300)
    when = f"{evidence.date}: " if evidence.date else ""
    return f"{when}“{text}”" if evidence.is_record_text else f"{when}{text}"


def _domain_table(result: CriteriaResult) -> list[str]:
    lines = ["| Domain | Points | Finding and evidence |", "|---|---:|---|"]
    for domain in Domain:
        score = result.domains[domain]
        points = str(score.points) if score.assessed else "not assessed"
        unique = list(dict.fromkeys((e.reference, e.date, e.text, e.is_record_text) for e in score.evidence))
        evidence = "; ".join(_evidence_text(Evidence(*e)) for e in unique[:3])
        finding = escape(score.item, limit=120) + (f": {evidence}" if evidence else "")
        lines.append(f"| {DOMAIN_LABELS[domain]} | {points} | {finding} |")
    lines.append(
        f"| **Total** | **{result.total}** | threshold {THRESHOLD}; maximum possible {result.maximum_possible} |"
    )
    return lines


def _missing(result: CriteriaResult, evidence: PatientEvidence) -> list[str]:
    items: list[str] = []
    unassessed = set(result.unassessed)
    if Domain.SERUM_IGG4 in unassessed:
        items.append("Serum IgG4 not measured in the lookback window: order serum IgG4.")
    elif result.igg4 is not None and 1 < result.igg4.ratio <= 2:
        items.append(
            "Serum IgG4 1–2 × ULN: an IgG4/IgG1 ratio > 0.24 favours IgG4-related sclerosing cholangitis."
        )
    if Domain.HISTOPATHOLOGY in unassessed:
        items.append(
            "No tissue: biopsy or brushing cytology with IgG4 immunostaining settles both malignancy and "
            "IgG4-related disease (histopathology up to 13, immunostaining up to 16 points)."
        )
    if Domain.KIDNEY in unassessed:
        items.append("Kidney domain not assessed: complement C3/C4 (hypocomplementemia scores 6).")
    imaging = [d for d in (Domain.GLANDS, Domain.CHEST, Domain.RETROPERITONEUM) if d in unassessed]
    if imaging:
        names = ", ".join(DOMAIN_LABELS[d].lower() for d in imaging)
        items.append(f"Not described in the imaging read: {names} (look for other organ involvement).")
    items.append(
        "Not assessed automatically: recurrent fever, response to glucocorticoids, other disease-specific "
        "autoantibodies, Hashimoto thyroiditis."
    )
    unavailable = sorted(evidence.unavailable)
    if unavailable:
        purposes = "; ".join(QUERIES_BY_KEY[k].purpose if k in QUERIES_BY_KEY else k for k in unavailable)
        items.append(f"**Incomplete data**: could not read {purposes}. The score may be understated.")
    if evidence.skipped.total or evidence.unit_errors:
        items.append(
            f"{evidence.skipped.total + evidence.unit_errors} record(s) could not be read (invalid or unknown unit)."
        )
    return items


def _context(evidence: PatientEvidence) -> list[str]:
    lines: list[str] = []
    if evidence.has_condition(ConditionKind.ANKYLOSING_SPONDYLITIS):
        lines.append(
            "Ankylosing spondylitis on record: chronic immune-mediated disease has preceded IgG4-related "
            "disease in published cases."
        )
    immuno = sorted({m.name for m in evidence.medications if m.kind is MedicationKind.IMMUNOMODULATOR})
    if immuno:
        lines.append(f"Immunomodulator therapy: {', '.join(immuno)}.")
    if evidence.has_condition(ConditionKind.IGG4_RD):
        lines.append("IgG4-related disease is already on the problem list.")
    labs: list[str] = []
    shown: set[str] = set()  # two LOINC codes share a name (bilirubin): show the first one measured
    for code, name in codes.CONTEXT_LABS.items():
        results = evidence.lab(code)
        if results and results[0].value is not None and name not in shown:
            shown.add(name)
            latest = results[0]
            flag = " (high)" if latest.above_high else ""
            labs.append(f"{name} {escape(latest.original, limit=40)}{flag}")
    if labs:
        lines.append(
            "Latest context labs (not scored; tumour markers neither rule IgG4-RD in nor out): "
            + ", ".join(labs)
            + "."
        )
    return lines


def _caveats(result: CriteriaResult, evidence: PatientEvidence) -> list[str]:
    caveats = []
    ratio = result.igg4.ratio if result.igg4 is not None else None
    if ratio is not None and ratio > 1:
        caveats.append(
            "Serum IgG4 is raised in about 13% of cholangiocarcinoma, rarely above 2 × ULN (3%); above 4 × ULN it "
            "was 100% specific against cholangiocarcinoma (Mayo series)."
        )
    if any(m.kind is MedicationKind.GLUCOCORTICOID for m in evidence.medications):
        caveats.append(
            "Glucocorticoid exposure lowers serum IgG4: the highest pre-treatment value is the one scored."
        )
    if ratio is not None and ratio <= 1:
        caveats.append(
            "A normal IgG4 with typical imaging may be a prozone artefact: ask the lab to repeat with dilution."
        )
    if result.igg4 is not None and result.igg4.uln_is_default:
        caveats.append("The lab reported no IgG4 upper limit: the service used its default ULN.")
    return caveats


def _detail(assessment: Assessment, result: CriteriaResult) -> str:
    evidence = assessment.evidence
    parts = [
        f"**{CRITERIA_NAME} IgG4-RD classification: {result.total} points (threshold {THRESHOLD}) — "
        f"{CLASSIFICATION_WORDS[result.classification]}.**",
        "",
        "Classification criteria are not a diagnosis. Malignancy must still be excluded: work up IgG4-related "
        "disease alongside, not instead of, the cholangiocarcinoma work-up.",
        "",
        *_domain_table(result),
    ]
    if result.exclusions:
        parts += ["", "**Exclusions**"]
        for exclusion in result.exclusions:
            status = (
                "present — blocks classification"
                if exclusion.status is ExclusionStatus.PRESENT
                else "unresolved — to settle"
            )
            evidence_text = "; ".join(_evidence_text(e) for e in exclusion.evidence[:2])
            parts.append(
                f"- {escape(exclusion.label, limit=150)}: {status}"
                + (f" ({evidence_text})" if evidence_text else "")
            )
    parts += ["", "**Missing data**", *(f"- {m}" for m in _missing(result, evidence))]
    context = _context(evidence)
    if context:
        parts += ["", "**Context**", *(f"- {c}" for c in context)]
    caveats = _caveats(result, evidence)
    if caveats:
        parts += ["", "**IgG4 caveats**", *(f"- {c}" for c in caveats)]
    return "\n".join(parts)


def _service_request(patient_id: str | None, loinc: str, label: str) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "order",
        "category": [
            {"coding": [{"system": codes.SNOMED, "code": "108252007", "display": "Laboratory procedure"}]}
        ],
        "code": {"coding": [{"system": codes.LOINC, "code": loinc}], "text": label},
        "reasonCode": [{"text": "Evaluate for IgG4-related disease (2019 ACR/EULAR criteria)"}],
    }
    if patient_id:
        resource["subject"] = {"reference": f"Patient/{patient_id}"}
    return resource


def suggested_loinc(result: CriteriaResult) -> list[list[str]]:
    """The LOINC codes the card suggests ordering, one list per suggestion (CLINICAL_SPEC section 6)."""
    groups: list[list[str]] = []
    if result.igg4 is None:
        groups.append([codes.IGG4])
    elif 1 < result.igg4.ratio <= 2:
        groups.append([codes.IGG1])
    if not result.domains[Domain.KIDNEY].assessed:
        groups.append([codes.C3, codes.C4])
    return groups


def _suggestions(result: CriteriaResult, patient_id: str | None) -> list[dict[str, Any]]:
    if patient_id is None:
        return []  # a ServiceRequest needs a subject to be valid FHIR: no patient, no draft order
    labels = {
        (codes.IGG4,): "Order serum IgG4",
        (codes.IGG1,): "Order IgG subclasses: IgG1 for the IgG4/IgG1 ratio",
        (codes.C3, codes.C4): "Order complement C3 and C4",
    }
    suggestions = []
    for group in suggested_loinc(result):
        actions = [
            {
                "type": "create",
                "description": f"Draft order: {_LAB_SUGGESTIONS[code]}",
                "resource": _service_request(patient_id, code, _LAB_SUGGESTIONS[code]),
            }
            for code in group
        ]
        suggestions.append({"label": labels[tuple(group)], "uuid": _uuid(), "actions": actions})
    return suggestions


def classification_extension(result: CriteriaResult) -> dict[str, Any]:
    """The machine-readable classification of CLINICAL_SPEC section 6, for EHR analytics and tests."""
    return {
        "criteria": CRITERIA_NAME,
        "classification": result.classification.value,
        "total": result.total,
        "threshold": THRESHOLD,
        "maximumPossible": result.maximum_possible,
        "entryCriterion": result.entry.value,
        "domains": {
            d.value: {
                "points": result.domains[d].points,
                "assessed": result.domains[d].assessed,
                "item": result.domains[d].item,
                "evidence": sorted({e.reference for e in result.domains[d].evidence}),
            }
            for d in Domain
        },
        "exclusions": [
            {
                "id": e.id.value,
                "status": e.status.value,
                "evidence": sorted({ev.reference for ev in e.evidence}),
            }
            for e in result.exclusions
        ],
    }


def render_cards(assessment: Assessment, patient_id: str | None) -> list[dict[str, Any]]:
    """The cards for an assessment: one card, or none when the indicator is ``none``."""
    result = assessment.criteria
    if assessment.indicator is Indicator.NONE or result is None:
        return []
    card: dict[str, Any] = {
        "uuid": _uuid(),
        "summary": summary_line(result),
        "indicator": assessment.indicator.value,
        "detail": _detail(assessment, result),
        "source": dict(SOURCE),
    }
    suggestions = _suggestions(result, patient_id)
    if suggestions:
        card["suggestions"] = suggestions
        card["selectionBehavior"] = "any"
    card["overrideReasons"] = [
        {"code": code, "system": OVERRIDE_SYSTEM, "display": display} for code, display in OVERRIDE_REASONS
    ]
    card["links"] = [
        {
            "label": "2019 ACR/EULAR IgG4-RD classification criteria",
            "url": PUBLICATION_URL,
            "type": "absolute",
        }
    ]
    card["extension"] = {EXTENSION_KEY: classification_extension(result)}
    return [card]
