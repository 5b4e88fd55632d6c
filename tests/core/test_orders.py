import pytest

from cds_service.core.evidence import OrderAction as O
from cds_service.core.orders import classify_order
from cds_service.core.resources import read_resource
from tests.builders import CPT, ICD10, LOINC, SNOMED, medication_request, service_request


def _classify(raw, refs=frozenset()):
    return classify_order(read_resource(raw["resourceType"], raw), refs)


@pytest.mark.parametrize(
    ("raw", "actions"),
    [
        (service_request("47130"), {O.RESECTION}),
        (service_request("47120"), {O.RESECTION}),
        (service_request("48150"), {O.RESECTION}),
        (service_request("48154"), {O.RESECTION}),
        (service_request("47711"), {O.RESECTION}),
        (service_request("47760"), {O.RESECTION}),
        (service_request("47785"), {O.RESECTION}),
        (service_request("47786"), set()),
        (service_request(text="Right hepatectomy"), {O.RESECTION}),
        (medication_request("12574"), {O.SYSTEMIC_THERAPY}),
        (medication_request("2555"), {O.SYSTEMIC_THERAPY}),
        (medication_request(text="Gemcitabine 1000 mg/m2 IV"), {O.SYSTEMIC_THERAPY}),
        (medication_request("617993"), set()),  # amoxicillin/clavulanate
        (service_request("3457005", SNOMED, text="Referral to surgical oncology"), {O.REFERRAL}),
        (service_request(text="Referral to hepatobiliary surgery"), {O.REFERRAL}),
        (service_request(text="Referral to dermatology"), set()),
        (service_request("58410-2", LOINC, text="CBC"), set()),  # a routine order
        (service_request("58410-2", LOINC, reason=(ICD10, "C22.1")), {O.REASON}),
        (service_request("58410-2", LOINC, reason=(ICD10, "K83.1")), {O.REASON}),
        (service_request("58410-2", LOINC, reason=(SNOMED, "312104005")), {O.REASON}),
        (service_request("47130", reason=(ICD10, "C24.0")), {O.RESECTION, O.REASON}),
    ],
)
def test_draft_order_actions(raw, actions):
    assert set(_classify(raw).actions) == actions


def test_reason_reference_to_a_cca_condition():
    raw = service_request("58410-2", LOINC) | {"reasonReference": [{"reference": "Condition/cca-1"}]}
    assert _classify(raw).reason_is_cca is False
    assert _classify(raw, frozenset({"Condition/cca-1"})).reason_is_cca is True


def test_cpt_system_is_required_for_cpt_codes():
    assert not _classify(service_request("47130", system="http://example.org/local")).actions
    assert CPT.endswith("cpt")


@pytest.mark.parametrize(
    ("reason", "acts", "names_cca"),
    [((ICD10, "C22.1"), True, True), ((ICD10, "K83.1"), True, False), ((SNOMED, "312104005"), True, True)],
)
def test_a_stricture_reason_acts_on_the_presumption_but_does_not_raise_it(reason, acts, names_cca):
    facts = _classify(service_request("43260", CPT, reason=reason))  # ERCP
    assert bool(facts.actions) is acts
    assert facts.reason_is_cca is names_cca
