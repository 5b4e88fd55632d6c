from datetime import date

from cds_service.audit.evaluate import AuditOptions, evaluate_patient, known_by, resource_date
from cds_service.core.assessment import CoreConfig
from tests.audit.cards import hook_cards
from tests.audit.population import fixture_patients

AS_OF = date(2026, 11, 25)


def test_resource_dates_and_what_was_known_by_a_day():
    condition = {
        "resourceType": "Condition",
        "recordedDate": "2026-03-02T10:00:00Z",
        "onsetDateTime": "2025-01-01",
    }
    lab = {"resourceType": "Observation", "effectivePeriod": {"start": "2026-05-01"}}
    undated = {"resourceType": "Observation"}
    assert resource_date(condition) == date(2026, 3, 2)
    assert resource_date(lab) == date(2026, 5, 1)
    assert resource_date(undated) is None
    assert known_by([condition, lab, undated], date(2026, 4, 1)) == [condition, undated]


def test_every_fixture_in_process_gets_the_card_of_its_hook():
    expected = hook_cards()
    options = AuditOptions(CoreConfig(), as_of=AS_OF, today=AS_OF)
    for name, resources in fixture_patients():
        patient = next(r["id"] for r in resources if r["resourceType"] == "Patient")
        row = evaluate_patient(patient, resources, options)
        hook, card = expected[patient]
        got = (
            row.indicator if hook == "patient-view" else row.order_indicator,
            row.total if hook == "patient-view" else row.order_total,
            row.classification if hook == "patient-view" else row.order_classification,
        )
        assert (got[0], "" if got[1] is None else str(got[1]), got[2] or "") == card, name


def test_the_index_date_is_when_the_presumption_began():
    resources = dict(fixture_patients())["01-published-case"]
    row = evaluate_patient("f01-patient", resources, AuditOptions(CoreConfig(), today=AS_OF))
    reports = [r for r in resources if r["resourceType"] == "DiagnosticReport"]
    assert row.index_source == "report"
    assert row.index_date == min(resource_date(r) for r in reports)
    assert row.presumed and row.order_after_index and row.order_date == AS_OF
    assert row.days_to_resection == (AS_OF - row.index_date).days
    assert "resection" in row.order_actions


def test_grounds_older_than_the_lookback_still_give_the_index_date():
    resources = dict(fixture_patients())["01-published-case"]
    later = date(2031, 11, 25)  # the presumption began five years before the audit runs
    row = evaluate_patient("f01-patient", resources, AuditOptions(CoreConfig(), today=later))
    assert row.index_source == "report" and row.index_date is not None and row.index_date < AS_OF
    assert row.presumed
