"""The hook's card for every fixture (the reference the audit must reproduce) and the audit's, side by side."""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path

from cds_service.hooks.discovery import SERVICE_FOR_HOOK, find_service
from cds_service.hooks.handler import handle_hook
from cds_service.settings import Settings
from tests.audit.population import FIXTURES

EVALUATION_DATE = "2026-11-25"
Card = tuple[str, str, str]
"""(indicator, total, classification) as patients.csv writes them ("" when absent)."""


def hook_cards() -> dict[str, tuple[str, Card]]:
    """Patient id -> (hook, card) from the fixture's request.json through the hook handler."""
    found = {}
    for folder in sorted(p for p in FIXTURES.iterdir() if (p / "request.json").is_file()):
        request = json.loads((folder / "request.json").read_text())
        outcome = handle_hook(
            find_service(SERVICE_FOR_HOOK[request["hook"]]),
            request,
            Settings(dev_mode=True),
            today=date.fromisoformat(EVALUATION_DATE),
        )
        assessment = outcome.assessment
        criteria = assessment.criteria if assessment is not None else None
        card = (
            assessment.indicator.value if assessment is not None else "none",
            str(criteria.total) if criteria is not None else "",
            criteria.classification.value if criteria is not None else "",
        )
        found[request["context"]["patientId"]] = (request["hook"], card)
    return found


def audit_cards(csv_path: Path) -> dict[str, tuple[Card, Card]]:
    """Patient id -> (card at the index date, order-sign card of the first acting order) from patients.csv."""
    with csv_path.open(newline="") as handle:
        return {
            row["patient"]: (
                (row["indicator"], row["total"], row["classification"]),
                (row["order_indicator"], row["order_total"], row["order_classification"]),
            )
            for row in csv.DictReader(handle)
        }


def mismatches(csv_path: Path, as_of: bool) -> list[str]:
    """Fixtures whose audit card differs from the hook's (patient-view only compared with ``as_of``)."""
    audit = audit_cards(csv_path)
    wrong = []
    for patient, (hook, expected) in hook_cards().items():
        if patient not in audit:
            wrong.append(f"{patient}: missing from the audit")
            continue
        index_card, order_card = audit[patient]
        if hook == "patient-view":
            if as_of and index_card != expected:
                wrong.append(f"{patient} ({hook}): hook {expected}, audit {index_card}")
        elif order_card != expected:
            wrong.append(f"{patient} ({hook}): hook {expected}, audit {order_card}")
    return wrong
