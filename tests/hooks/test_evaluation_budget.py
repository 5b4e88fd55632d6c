"""Evaluation has a time budget (issue 10): what is not read in time is reported as incomplete data."""

from __future__ import annotations

from cds_service.hooks.discovery import find_service
from cds_service.hooks.handler import handle_hook
from cds_service.settings import Settings
from tests.builders import hook_request, report
from tests.conftest import EVALUATION_DATE


def test_reports_not_read_in_time_are_incomplete_data_not_an_error() -> None:
    reports = [report("Diffuse pancreatic enlargement. " * 40) for _ in range(3000)]
    body = hook_request("patient-view", reports=reports)
    settings = Settings(dev_mode=True, evaluation_time_budget_s=0.05)
    outcome = handle_hook(find_service("igg4rd-patient-view"), body, settings, today=EVALUATION_DATE)
    assert outcome.assessment is not None
    assert "reports" in outcome.assessment.evidence.unavailable
    assert outcome.timings_ms["evaluate"] < 1500


def test_ample_budget_reads_everything() -> None:
    body = hook_request("patient-view", reports=[report("Diffuse pancreatic enlargement.")])
    outcome = handle_hook(
        find_service("igg4rd-patient-view"), body, Settings(dev_mode=True), today=EVALUATION_DATE
    )
    assert outcome.assessment is not None
    assert "reports" not in outcome.assessment.evidence.unavailable
    assert len(outcome.assessment.evidence.reports) == 1
