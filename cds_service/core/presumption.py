"""The presumption of cholangiocarcinoma, tissue-proven malignancy and the card decision (section 5)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Final

from cds_service.core.criteria import Classification, CriteriaResult
from cds_service.core.evidence import ConditionKind, DraftOrderFacts, PatientEvidence, ReportFacts, ReportKind
from cds_service.core.findings import Assertion, Concept
from cds_service.core.tissue import proves_carcinoma

PRESUMING_VERIFICATION: Final = frozenset({"provisional", "differential", "unconfirmed", "confirmed", None})
WARNING_IGG4_RATIO: Final = Decimal(4)
"""Serum IgG4 above 4 × ULN was 100% specific against CCA in the Mayo series (Oseini 2011)."""


class Indicator(StrEnum):
    """The card shown: CDS Hooks indicator values, or none."""

    WARNING = "warning"
    INFO = "info"
    NONE = "none"


@dataclass(frozen=True)
class Presumption:
    """Whether CCA is presumed, on what grounds, and whether tissue proved a carcinoma."""

    grounds: tuple[str, ...]
    tissue_proven: tuple[str, ...]

    @property
    def present(self) -> bool:
        """CCA is presumed and no pathology report proves carcinoma."""
        return bool(self.grounds) and not self.tissue_proven


def presumption(evidence: PatientEvidence, orders: list[DraftOrderFacts]) -> Presumption:
    """Find the grounds for a presumed CCA: a Condition, a draft order's reason, or an imaging or procedure
    report that asserts or suspects CCA or a malignant biliary stricture (an uncertain mention counts).

    Any report that is not pathology by its category (radiology, ERCP, interventional procedure notes)
    raises the presumption and never proves carcinoma; only a pathology report's diagnosis of carcinoma
    of a pancreatobiliary specimen or primary ends it (:mod:`cds_service.core.tissue`).
    """
    grounds: list[str] = [
        c.reference
        for c in evidence.conditions
        if c.kind is ConditionKind.CHOLANGIOCARCINOMA
        and c.active
        and c.verification in PRESUMING_VERIFICATION
    ]
    grounds += [o.reference for o in orders if o.reason_is_cca]
    grounds += [r.reference for r in evidence.reports if raises_presumption(r)]
    # Tissue proof counts whatever the report's date (section 5): no lookback filter here.
    proven = [r.reference for r in evidence.reports if proves_malignancy(r)]
    return Presumption(tuple(dict.fromkeys(grounds)), tuple(proven))


_SUSPECTED: Final = frozenset({Assertion.AFFIRMED, Assertion.UNCERTAIN})


def raises_presumption(report: ReportFacts) -> bool:
    """Whether an imaging or procedure report asserts or suspects CCA or a malignant biliary stricture."""
    return report.kind is ReportKind.IMAGING and any(
        f.concept is Concept.CHOLANGIOCARCINOMA and f.assertion in _SUSPECTED for f in report.findings
    )


def proves_malignancy(report: ReportFacts) -> bool:
    """Whether a pathology report proves carcinoma of a pancreatobiliary specimen or primary (section 5)."""
    return report.kind is ReportKind.PATHOLOGY and any(
        proves_carcinoma(f, report.specimen, report.attributed_primary) for f in report.findings
    )


def acting_orders(orders: list[DraftOrderFacts]) -> list[DraftOrderFacts]:
    """Draft orders that act on a presumed CCA: resection, systemic therapy, referral, CCA/stricture reason."""
    return [o for o in orders if o.actions]


def choose_indicator(result: CriteriaResult, evidence: PatientEvidence) -> Indicator:
    """Warning, info or no card, from the classification and the serum IgG4 (section 5, "Which card")."""
    excluded = bool(result.present_exclusions)
    ratio = result.igg4.ratio if result.igg4 is not None else None
    if result.classification is Classification.MEETS or (
        ratio is not None and ratio > WARNING_IGG4_RATIO and not excluded
    ):
        return Indicator.WARNING
    if (
        result.classification is Classification.EXCLUDED
        or (ratio is not None and ratio > 1)
        or result.igg4 is None
        or evidence.has_condition(ConditionKind.ANKYLOSING_SPONDYLITIS)
        or result.total > 0
    ):
        return Indicator.INFO
    return Indicator.NONE
