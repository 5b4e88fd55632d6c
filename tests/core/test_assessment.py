"""core/assessment.py on its own: reading the draft orders and the evidence, then deciding the card."""

from __future__ import annotations

from typing import Any

from cds_service.core.assessment import CoreConfig, assess, needs_patient_data, read_evidence, read_orders
from cds_service.core.evidence import OrderAction
from cds_service.core.presumption import Indicator
from cds_service.fixtures.catalog import FIXTURE_DATE
from tests.builders import bundle, condition, medication_request, service_request

CONFIG = CoreConfig()
HEPATECTOMY = "47130"
CCA_SNOMED = "312104005"


def orders_bundle(*orders: dict[str, Any]) -> dict[str, Any]:
    return bundle(*orders, kind="collection")


def evidence_for(*conditions: dict[str, Any], unavailable: set[str] | None = None) -> Any:
    return read_evidence({"conditions": bundle(*conditions)}, unavailable or set(), CONFIG, FIXTURE_DATE)


def with_reason_reference(order: dict[str, Any], reference: str) -> dict[str, Any]:
    return {**order, "reasonReference": [{"reference": reference}]}


def test_read_orders_classifies_service_and_medication_requests() -> None:
    resection = service_request(HEPATECTOMY)
    gemcitabine = medication_request("12574")
    xray = service_request(text="Chest X-ray")
    orders = read_orders(orders_bundle(resection, gemcitabine, xray))
    by_ref = {f.reference: f.actions for f in orders.facts}
    assert by_ref == {
        f"ServiceRequest/{resection['id']}": frozenset({OrderAction.RESECTION}),
        f"ServiceRequest/{xray['id']}": frozenset(),
        f"MedicationRequest/{gemcitabine['id']}": frozenset({OrderAction.SYSTEMIC_THERAPY}),
    }
    assert [f.reference for f in orders.acting] == [
        f"ServiceRequest/{resection['id']}",
        f"MedicationRequest/{gemcitabine['id']}",
    ]


def test_order_select_considers_only_the_selected_orders() -> None:
    resection, xray = service_request(HEPATECTOMY), service_request(text="Chest X-ray")
    draft = orders_bundle(resection, xray)
    assert read_orders(draft, [f"ServiceRequest/{xray['id']}"]).acting == []
    assert len(read_orders(draft, [f"ServiceRequest/{resection['id']}"]).acting) == 1
    # No usable list: every draft order counts.
    for selections in (None, [], [1, 2], "ServiceRequest/x"):
        assert len(read_orders(draft, selections).acting) == 1


def test_draft_orders_are_read_tolerantly_and_repairs_counted() -> None:
    broken = {**service_request(HEPATECTOMY), "status": 12, "category": {"text": "surgery"}}
    orders = read_orders(orders_bundle(broken, service_request(HEPATECTOMY)))
    assert len(orders.acting) == 2  # a status sent as a number, a single category: the order still counts
    assert orders.read.as_log() == {"repaired": {"ServiceRequest": 2}}


def test_which_hooks_need_patient_data() -> None:
    none = read_orders(orders_bundle(service_request(text="Chest X-ray")))
    assert needs_patient_data("patient-view", none)
    assert not needs_patient_data("order-sign", none)
    assert not needs_patient_data("order-select", none)
    assert needs_patient_data("order-sign", read_orders(orders_bundle(service_request(HEPATECTOMY))))
    # An unresolved reasonReference may name a CCA condition: the record must be read to know.
    unresolved = with_reason_reference(service_request(text="Chest X-ray"), "Condition/c-9")
    assert needs_patient_data("order-sign", read_orders(orders_bundle(unresolved)))


def test_read_evidence_keeps_what_was_unavailable_and_counts_skipped_elements() -> None:
    unavailable = {"reports"}
    broken = {**condition(CCA_SNOMED), "clinicalStatus": "active"}
    evidence = evidence_for(
        condition(CCA_SNOMED, verification="provisional"), broken, unavailable=unavailable
    )
    unavailable.add("observations")
    assert evidence.unavailable == {"reports"}
    # The unreadable clinicalStatus costs that element only: the Condition is kept.
    assert len(evidence.conditions) == 2
    assert evidence.read.as_log() == {"skipped_elements": {"Condition": 1}}


def test_no_presumption_means_no_card() -> None:
    orders = read_orders(orders_bundle(service_request(HEPATECTOMY)))
    result = assess("order-sign", orders, evidence_for())
    assert (result.indicator, result.criteria, result.presumption.present) == (Indicator.NONE, None, False)


def test_an_order_hook_without_an_acting_order_gives_no_card_even_when_cca_is_presumed() -> None:
    cca = condition(CCA_SNOMED, verification="provisional")
    orders = read_orders(orders_bundle(service_request(text="Chest X-ray")))
    result = assess("order-sign", orders, evidence_for(cca))
    assert result.presumption.present
    assert (result.indicator, result.criteria, result.orders) == (Indicator.NONE, None, [])


def test_a_presumed_cca_with_an_acting_order_is_scored() -> None:
    cca = condition(CCA_SNOMED, verification="provisional")
    orders = read_orders(orders_bundle(service_request(HEPATECTOMY)))
    result = assess("order-sign", orders, evidence_for(cca))
    assert result.presumption.grounds == (f"Condition/{cca['id']}",)
    assert result.criteria is not None
    assert result.indicator is not Indicator.NONE
    assert [o.actions for o in result.orders] == [frozenset({OrderAction.RESECTION})]


def test_patient_view_needs_no_order() -> None:
    cca = condition(CCA_SNOMED, verification="provisional")
    result = assess("patient-view", read_orders(None), evidence_for(cca))
    assert result.criteria is not None and result.orders == []


def test_a_reason_reference_to_the_cca_condition_is_resolved_once_the_record_is_read() -> None:
    cca = condition(CCA_SNOMED, verification="provisional")
    order = with_reason_reference(service_request(text="Chest X-ray"), f"Condition/{cca['id']}")
    orders = read_orders(orders_bundle(order))
    [before] = orders.facts
    assert (before.actions, before.reason_is_cca) == (frozenset(), False)
    result = assess("order-sign", orders, evidence_for(cca))
    [acting] = result.orders
    assert acting.reference == before.reference
    assert (acting.actions, acting.reason_is_cca) == (frozenset({OrderAction.REASON}), True)
    assert acting.label == "order with reason cholangiocarcinoma or biliary stricture"
    # A reference to any other condition stays inert.
    other = with_reason_reference(service_request(text="Chest X-ray"), "Condition/elsewhere")
    assert assess("order-sign", read_orders(orders_bundle(other)), evidence_for(cca)).orders == []
