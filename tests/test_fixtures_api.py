"""Every fixture patient gives its stated result through the HTTP API."""

from __future__ import annotations

import pytest

from cds_service.fixtures.catalog import list_fixtures
from cds_service.hooks.cards import EXTENSION_KEY
from cds_service.hooks.discovery import SERVICES

SERVICE_FOR_HOOK = {s.hook: s.id for s in SERVICES}
FIXTURES = list_fixtures()


def test_at_least_ten_fixtures():
    assert len(FIXTURES) >= 10


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.name for f in FIXTURES])
def test_fixture_result_through_the_api(client, validate, fixture):
    expected = fixture.expected["expected"]
    response = client.post(f"/cds-services/{SERVICE_FOR_HOOK[fixture.request['hook']]}", json=fixture.request)
    assert response.status_code == 200, response.text
    validate(response.json(), "response")
    cards = response.json()["cards"]
    if expected["card"] == "none":
        assert cards == []
        return
    [card] = cards
    assert card["indicator"] == expected["card"]
    result = card["extension"][EXTENSION_KEY]
    assert result["classification"] == expected["classification"]
    assert result["total"] == expected["total"]
    scored = {d: v["points"] for d, v in result["domains"].items() if v["points"]}
    assert scored == expected["domains"]
    assert {e["id"]: e["status"] for e in result["exclusions"]} == expected["exclusions"]
    suggested = [
        a["resource"]["code"]["coding"][0]["code"] for s in card.get("suggestions", []) for a in s["actions"]
    ]
    assert sorted(suggested) == sorted(expected["suggestedLoinc"])


def test_published_case_scores_35(client):
    fixture = next(f for f in FIXTURES if f.name.startswith("01-"))
    card = client.post("/cds-services/igg4rd-order-sign", json=fixture.request).json()["cards"][0]
    result = card["extension"][EXTENSION_KEY]
    assert result["total"] == 35
    assert {d: v["points"] for d, v in result["domains"].items() if v["points"]} == {
        "serum-igg4": 6,
        "pancreas-biliary": 19,
        "kidney": 10,
    }
    assert result["classification"] == "meets" and card["indicator"] == "warning"
