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


def test_reason_reference_to_a_biliary_stricture_condition_counts_like_the_code():
    raw = service_request("58410-2", LOINC) | {"reasonReference": [{"reference": "Condition/str-1"}]}
    model = read_resource("ServiceRequest", raw)
    assert not classify_order(model).actions
    facts = classify_order(model, frozenset(), frozenset({"Condition/str-1"}))
    assert facts.actions == {O.REASON}
    assert facts.reason_is_cca is False  # a stricture acts on the presumption but does not raise it


def test_the_sandbox_snomed_biliary_stricture_reason_acts():
    raw = service_request("78226", CPT, reason=(SNOMED, "235921003"))
    assert _classify(raw).actions == {O.REASON}


def _with_reason(raw, code=None, system=ICD10, text=None):
    concept = {"coding": [{"system": system, "code": code}]} if code else {}
    if text:
        concept["text"] = text
    return raw | {"reasonCode": [concept]}


@pytest.mark.parametrize(
    ("raw", "acts"),
    [
        (medication_request(text="capecitabine 500 MG Oral Tablet"), True),
        (medication_request(text="oxaliplatin 5 MG/ML Injection"), True),
        (medication_request(text="fluorouracil 50 MG/ML Injectable Solution"), True),
        (medication_request("1919503"), True),  # durvalumab
        (medication_request("1547545"), True),  # pembrolizumab
        (medication_request(text="ivosidenib 250 MG Oral Tablet"), True),
        (medication_request(text="pemigatinib 13.5 MG Oral Tablet"), True),
        (medication_request(text="futibatinib 4 MG Oral Tablet"), True),
        (_with_reason(medication_request("12574"), "C22.1"), True),
        (_with_reason(medication_request("12574"), "C24.0"), True),
        (_with_reason(medication_request("12574"), text="Perihilar cholangiocarcinoma"), True),
        (_with_reason(medication_request("12574"), text="Biliary tract cancer"), True),
        (_with_reason(medication_request("12574"), "K83.1"), True),  # a stricture is not another cancer
        (_with_reason(medication_request("12574"), "C34.90"), False),  # lung cancer
        (_with_reason(medication_request("1547545"), text="Metastatic melanoma"), False),
        (_with_reason(medication_request(text="capecitabine 500 MG"), "C18.7"), False),  # colon cancer
        (_with_reason(medication_request("2555"), text="Squamous cell carcinoma of the cervix"), False),
        (_with_reason(medication_request("12574"), text="Diffuse large B-cell lymphoma"), False),
        (_with_reason(medication_request("12574"), "C25.0"), True),  # pancreatic: not another cancer here
        (_with_reason(medication_request("12574"), "C80.1"), True),  # site unspecified
        (_with_reason(medication_request("12574"), text="Chemotherapy for malignancy"), True),
        (_with_reason(medication_request("12574"), text="Hilar tumour"), True),
    ],
)
def test_systemic_therapy_acts_unless_its_reason_names_another_cancer(raw, acts):
    assert (O.SYSTEMIC_THERAPY in _classify(raw).actions) is acts
