"""Rendering an :class:`~cds_service.core.assessment.Assessment` as CDS Hooks 2.0 cards (CLINICAL_SPEC section 6).

Every piece of record text goes through :func:`cds_service.hooks.markdown.escape`; everything else is our own
wording. Empty optional fields are omitted, never sent as ``null`` or ``[]``.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Final

from cds_service.core import codes
from cds_service.core.assessment import Assessment
from cds_service.core.criteria import CRITERIA_NAME, THRESHOLD, Classification, CriteriaResult
from cds_service.core.domains import DOMAIN_CONCEPTS, DOMAIN_LABELS, Domain
from cds_service.core.evidence import ConditionKind, Evidence, MedicationKind, PatientEvidence
from cds_service.core.exclusions import ExclusionStatus
from cds_service.core.findings import Concept, Laterality
from cds_service.core.narrative import extract_findings
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
_OVERRIDE_DISPLAYS: Final = dict(OVERRIDE_REASONS)


def override_reason_display(system: str | None, code: str | None) -> str | None:
    """The display of one of this service's own override reasons (``system`` is :data:`OVERRIDE_SYSTEM`), else
    ``None``: EHRs such as the CDS Hooks sandbox send back only the code and system of the reason chosen."""
    return _OVERRIDE_DISPLAYS.get(code or "") if system == OVERRIDE_SYSTEM else None


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


# Short phrases for record-text evidence ------------------------------------------------------------

_CARD_CONCEPTS: Final[dict[Domain, frozenset[Concept]]] = {
    **DOMAIN_CONCEPTS,
    Domain.HISTOPATHOLOGY: frozenset(
        {Concept.LYMPHOPLASMACYTIC_INFILTRATE, Concept.OBLITERATIVE_PHLEBITIS, Concept.STORIFORM_FIBROSIS}
    ),
    Domain.IMMUNOSTAINING: frozenset({Concept.IGG4_IMMUNOSTAIN}),
}
_HEADING: Final = re.compile(r"^[A-Za-z][A-Za-z /&-]{0,40}:\s+")
_CLAUSE_END: Final = re.compile(
    r",\s|;\s|\s(?:with|and|on|in|at|which|measuring|causing|extending)\s|\s[-–—]\s"
)
_SHORT_LABELS: Final = {Domain.GLANDS: "glands"}
SHORT_PHRASE: Final = 90
"""Longest finding phrase quoted on the card; the whole sentence stays in the report the evidence names."""

_Signature = frozenset[tuple[Concept, Laterality | None]]


def _signature(text: str, concepts: frozenset[Concept]) -> _Signature:
    return frozenset(
        (f.concept, f.laterality) for f in extract_findings(text) if f.affirmed and f.concept in concepts
    )


def short_phrase(sentence: str, concepts: frozenset[Concept]) -> str:
    """The shortest leading clause of a report sentence that still reads as the same finding.

    The sentence is cut at a clause boundary ("…, with …", "… on the nephrographic phase") only when the
    report reader, run on the shorter text, still finds every affirmed ``concepts`` finding (and its side)
    it found in the whole sentence; a leading section heading ("Pancreas: ") is dropped on the same terms.
    A sentence the reader finds nothing in (it cannot be checked) is cut at :data:`SHORT_PHRASE` characters.
    Returns record text: escape it.
    """
    flat = " ".join(sentence.split()).rstrip(" .")
    wanted = _signature(flat, concepts)
    candidates = [flat]
    heading = _HEADING.match(flat)
    if heading:
        candidates.insert(0, flat[heading.end() :])
    if wanted:
        for text in candidates:
            for cut in [m.start() for m in _CLAUSE_END.finditer(text)] + [len(text)]:
                prefix = text[:cut].rstrip(" ,;")
                if wanted <= _signature(prefix, concepts):
                    return prefix  # never cut further: the rest may be the finding that earned the points
    return flat if len(flat) <= SHORT_PHRASE else flat[: SHORT_PHRASE - 1].rstrip() + "…"


def _short_label(domain: Domain) -> str:
    label = DOMAIN_LABELS[domain]
    return _SHORT_LABELS.get(domain, label[0].lower() + label[1:])


def _domain_evidence(domain: Domain, evidence: tuple[Evidence, ...]) -> str:
    """The evidence that earned a domain's points, compactly: one short phrase per finding, dates kept.

    A report sentence that shows only findings an earlier sentence already showed is left out (its report
    is still named in the extension's evidence references); lab evidence is our own wording and kept whole.
    """
    concepts = _CARD_CONCEPTS.get(domain, frozenset())
    covered: set[tuple[Concept, Laterality | None]] = set()
    seen: set[str] = set()
    by_date: dict[str, list[str]] = {}
    for item in evidence:
        if item.text in seen:
            continue
        seen.add(item.text)
        if item.is_record_text:
            signature = _signature(item.text, concepts)
            if signature and signature <= covered:
                continue
            covered |= signature
            text = f"“{escape(short_phrase(item.text, concepts), inline=True)}”"
        else:
            text = escape(item.text, limit=160, inline=True)
        by_date.setdefault(item.date or "", []).append(text)
    return "; ".join(f"{when} {'; '.join(texts)}".strip() for when, texts in by_date.items())


def _domain_table(result: CriteriaResult) -> list[str]:
    """Scored domains only, as a two-column table that still reads when drawn without borders or padding:
    the points (bold, in a column as wide as its header) and the domain name (bold) leading its evidence."""
    lines = ["| Points&nbsp;&nbsp; | Domain |", "|:--|:--|"]  # &nbsp;: a gap without padding
    for domain in Domain:
        score = result.domains[domain]
        if score.points == 0:
            continue
        evidence = _domain_evidence(domain, score.evidence)
        label = DOMAIN_LABELS[domain]
        item = (
            score.item[len(label) :].strip() if score.item.lower().startswith(label.lower()) else score.item
        )
        finding = escape(item, limit=120, inline=True) + (f" — {evidence}" if evidence else "")
        lines.append(f"| **{score.points}** | **{label}**: {finding} |")
    lines.append(f"| **{result.total}** | **Total** (of {result.maximum_possible} possible) |")
    return lines


def _not_scored(result: CriteriaResult) -> str | None:
    """Domains without points on one line, grouped by why: "not imaged", "no tissue", "no scoring finding"."""
    groups: dict[tuple[bool, str], list[str]] = {}
    for domain in Domain:
        score = result.domains[domain]
        if score.points == 0:
            groups.setdefault((score.assessed, score.item), []).append(_short_label(domain))
    if not groups:
        return None
    parts = [
        f"{', '.join(names)} ({escape(item, limit=80, inline=True)})" for (_, item), names in groups.items()
    ]
    return "**No points:** " + "; ".join(parts) + "."


def _missing(result: CriteriaResult) -> list[str]:
    """What is missing and what resolves it: at most three bullets, the most decisive first."""
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
            "Tissue (biopsy or brushing, IgG4 immunostain) settles malignancy and IgG4-RD: up to 29 points."
        )
    if Domain.KIDNEY in unassessed:
        items.append("Kidney: complement C3/C4 (hypocomplementemia scores 6).")
    # Organs the imaging read is silent on are listed under "No points (not imaged)": imaging them resolves it.
    manual = "Check by hand: recurrent fever, steroid response, autoantibodies, Hashimoto thyroiditis."
    return [*items[:3], manual] if len(items) < 3 else items[:3]


def _lab_list(labs: list[tuple[str, str, str]]) -> str:
    """Context labs as "ALT 734, AST 657 U/L, bilirubin 3.8 mg/dL": a unit shared by neighbours is said once."""
    out = []
    for i, (name, value, unit) in enumerate(labs):
        last = i + 1 == len(labs) or labs[i + 1][2] != unit
        out.append(escape(f"{name} {value}" + (f" {unit}" if last and unit else ""), limit=60, inline=True))
    return ", ".join(out)


def _context(evidence: PatientEvidence) -> str | None:
    """Immune-mediated disease, immunomodulators and the latest context labs, on one line."""
    parts: list[str] = []
    if evidence.has_condition(ConditionKind.ANKYLOSING_SPONDYLITIS):
        parts.append("ankylosing spondylitis")
    immuno = sorted({m.name for m in evidence.medications if m.kind is MedicationKind.IMMUNOMODULATOR})
    if immuno:
        parts.append(", ".join(immuno))
    if evidence.has_condition(ConditionKind.IGG4_RD):
        parts.append("IgG4-related disease already on the problem list")
    labs: list[tuple[bool, str, str, str]] = []
    shown: set[str] = set()  # two LOINC codes share a name (bilirubin): show the first one measured
    for code, name in codes.CONTEXT_LABS.items():
        results = evidence.lab(code)
        if results and results[0].value is not None and name not in shown:
            shown.add(name)
            value, _, unit = " ".join(results[0].original.split()).partition(" ")
            labs.append((results[0].above_high, name, value, unit))
    line = "; ".join(parts)
    if labs:
        high = _lab_list([lab[1:] for lab in labs if lab[0]])
        other = _lab_list([lab[1:] for lab in labs if not lab[0]])
        listed = "; ".join(x for x in (f"high {high}" if high else "", other) if x)
        line += ("; " if line else "") + f"labs, not scored: {listed}"
    return f"**Context:** {line[0].upper()}{line[1:]}." if line else None


def _caveats(result: CriteriaResult, evidence: PatientEvidence) -> list[str]:
    caveats = []
    unavailable = sorted(evidence.unavailable)
    if unavailable:
        purposes = "; ".join(QUERIES_BY_KEY[k].purpose if k in QUERIES_BY_KEY else k for k in unavailable)
        caveats.append(f"**Incomplete data**: could not read {purposes}; the score may be understated.")
    if evidence.read.unreadable or evidence.unit_errors:
        caveats.append(
            f"{evidence.read.unreadable + evidence.unit_errors} record(s) unreadable (invalid or unknown unit)."
        )
    if evidence.undated_labs:
        caveats.append(
            f"{evidence.undated_labs} lab result(s) without a date were ignored (not placed in time)."
        )
    ratio = result.igg4.ratio if result.igg4 is not None else None
    if ratio is not None and ratio > 1:
        caveats.append(
            "IgG4 is raised in 13% of cholangiocarcinoma, > 2 × ULN in 3%; > 4 × ULN was 100% specific (Mayo)."
        )
    if any(m.kind is MedicationKind.GLUCOCORTICOID for m in evidence.medications):
        caveats.append("Glucocorticoids lower IgG4: the highest pre-treatment value is scored.")
    if ratio is not None and ratio <= 1:
        caveats.append(
            "A normal IgG4 with typical imaging may be a prozone artefact: ask for a diluted repeat."
        )
    if result.igg4 is not None and result.igg4.uln_is_default:
        caveats.append("The lab reported no IgG4 upper limit: the service used its default ULN.")
    return caveats


def _exclusions(result: CriteriaResult) -> list[str]:
    lines = []
    for exclusion in result.exclusions:
        present = exclusion.status is ExclusionStatus.PRESENT
        status = "present, blocks classification" if present else "unresolved"
        evidence = "; ".join(
            f"{e.date + ' ' if e.date else ''}"
            + (
                f"“{escape(short_phrase(e.text, frozenset()), inline=True)}”"
                if e.is_record_text
                else escape(e.text, limit=120, inline=True)
            )
            for e in exclusion.evidence[:2]
        )
        lines.append(
            f"- **Exclusion {status}**: {escape(exclusion.label, limit=150, inline=True)}"
            + (f" ({evidence})" if evidence else "")
        )
    return lines


def _detail(assessment: Assessment, result: CriteriaResult) -> str:
    """The card detail, for one screen: the score, scored domains with the phrase that earned the points,
    the rest on one line, exclusions, at most three bullets of what is missing, context and caveats."""
    evidence = assessment.evidence
    parts = [
        f"**{result.total} points (threshold {THRESHOLD}) — {CLASSIFICATION_WORDS[result.classification]}**. "
        "Classification is not a diagnosis; malignancy must still be excluded: work up "
        "IgG4-RD alongside the cholangiocarcinoma work-up.",
        "",
        *_domain_table(result),
    ]
    not_scored = _not_scored(result)
    if not_scored:
        parts += ["", not_scored]
    exclusions = _exclusions(result)
    if exclusions:
        parts += ["", *exclusions]
    parts += ["", "**To resolve**", *(f"- {m}" for m in _missing(result))]
    context = _context(evidence)
    if context:
        parts += ["", context]
    caveats = _caveats(result, evidence)
    if caveats:
        parts += ["", "**Caveats:** " + " ".join(caveats)]
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
