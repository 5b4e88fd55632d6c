"""The development-mode card preview (``/preview``): fixture list, fixture cards, pasted requests, escaping."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from cds_service.fixtures.catalog import FIXTURE_DATE, list_fixtures
from cds_service.settings import Settings
from cds_service.web.app import create_app
from cds_service.web.preview import CSP, render_markdown
from tests.builders import ICD10, condition, hook_request, observation, report, service_request

FIXTURES = list_fixtures()

HOSTILE_CONCLUSION = (
    "<img src=x onerror=\"document.title='pwned'\"> <script>document.title='pwned'</script> "
    "[x](javascript:alert(1)) Diffuse enlargement of the pancreas."
)


def hostile_request() -> dict:
    """An order acting on cholangiocarcinoma, a hilar stricture, and a hostile report conclusion."""
    return hook_request(
        orders=[service_request("47130", reason=(ICD10, "C22.1"))],
        conditions=[condition("312104005", verification="provisional")],
        observations=[observation("2469-5", 2.43, high=0.864, when="2026-09-01")],
        reports=[
            report("Hilar stricture of the common hepatic duct with periductal thickening."),
            report(HOSTILE_CONCLUSION, when="2026-10-03"),
        ],
    )


class Elements(HTMLParser):
    """Every start tag with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Elements()
    parser.feed(html)
    parser.close()
    return parser.tags


def assert_inert(html: str) -> None:
    """No script, image or handler from the record: only escaped text."""
    lowered = html.lower()
    assert "<script" not in lowered
    assert "<img" not in lowered
    for tag, attrs in elements(html):
        assert tag not in {"script", "img", "iframe", "object", "embed"}, tag
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            assert "javascript:" not in (value or "").lower(), (tag, name, value)
    # The text that mentions them is still there, visibly escaped.
    assert "&lt;img" in html and "&lt;script" in html


@pytest.fixture(scope="module")
def preview() -> TestClient:
    return TestClient(create_app(Settings(dev_mode=True, database_url="sqlite://")))


def test_index_lists_every_fixture(preview):
    response = preview.get("/preview")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == CSP
    assert FIXTURES
    for fixture in FIXTURES:
        assert f'href="/preview/{fixture.name}"' in response.text
        assert fixture.expected["title"].replace("&", "&amp;").replace("<", "&lt;")[:40] in response.text
    assert '<textarea name="request"' in response.text


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.name for f in FIXTURES])
def test_each_fixture_page_shows_its_card(preview, fixture):
    response = preview.get(f"/preview/{fixture.name}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<script" not in response.text.lower()
    expected = fixture.expected["expected"]
    if expected["card"] == "none":
        assert "No card" in response.text
    else:
        assert f"card-{expected['card']}" in response.text
        assert "Consider IgG4-related disease" in response.text
        assert f"{expected['total']} points" in response.text
    assert "matches the service" in response.text


def test_published_case_renders_the_table_and_actions(preview):
    html = preview.get("/preview/01-published-case").text
    tags = elements(html)
    assert sum(1 for tag, _ in tags if tag == "tr") == 5  # header, the 3 scored domains, total
    assert any(tag == "select" for tag, _ in tags)
    assert '<option value="tissue-result">' in html
    assert 'href="https://doi.org/10.1002/art.41120"' in html


def test_suggestions_are_inert_buttons(preview):
    html = preview.get("/preview/12-order-select-eosinophilia").text
    buttons = [
        attrs for tag, attrs in elements(html) if tag == "button" and "suggest" in (attrs["class"] or "")
    ]
    assert buttons and all("disabled" in attrs for attrs in buttons)
    assert "Order IgG subclasses" in html


def test_hostile_record_text_stays_text(preview):
    response = preview.post("/preview", json=hostile_request())
    assert response.status_code == 200
    html = response.text
    assert "Consider IgG4-related disease" in html
    assert "Diffuse enlargement of the pancreas" in html
    assert_inert(html)


def test_hostile_request_through_the_form_without_csp(preview):
    import json  # noqa: PLC0415

    response = preview.post(
        "/preview?csp=0", data={"request": json.dumps(hostile_request()), "today": FIXTURE_DATE.isoformat()}
    )
    assert response.status_code == 200
    assert "content-security-policy" not in response.headers
    assert "Diffuse enlargement of the pancreas" in response.text
    assert_inert(response.text)


def test_renderer_passes_raw_html_like_the_sandbox():
    # The test above is meaningful only because the renderer does not sanitise by itself.
    assert "<b>raw</b>" in render_markdown("<b>raw</b>")


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ("{not json", 400, "not valid JSON"),
        (
            '{"hook": "encounter-start", "hookInstance": "x", "context": {}}',
            400,
            "is not one this service answers",
        ),
        ('{"hook": "order-sign", "context": {}}', 400, "hookInstance"),
    ],
)
def test_bad_pasted_requests_are_explained(preview, body, status, message):
    response = preview.post("/preview", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert message in response.text


def test_missing_prefetch_is_not_fetched(preview):
    body = hook_request(orders=[service_request("47130", reason=(ICD10, "C22.1"))], omit=("conditions",))
    body["fhirServer"] = "http://127.0.0.1:9/fhir"
    response = preview.post("/preview", json=body)
    assert response.status_code == 412


def test_unknown_fixture_is_404(preview):
    response = preview.get("/preview/..")
    assert response.status_code == 404
    assert preview.get("/preview/99-nope").status_code == 404


def test_not_served_outside_dev_mode():
    client = TestClient(create_app(Settings(dev_mode=False, database_url="sqlite://")))
    assert client.get("/preview").status_code == 404
    assert client.get("/preview/01-published-case").status_code == 404
    assert client.post("/preview", json=hostile_request()).status_code in {404, 405}


@pytest.mark.parametrize(
    ("pasted", "says"),
    [
        (
            {"resourceType": "Bundle", "type": "transaction", "entry": []},
            "This is a FHIR Bundle, not a CDS Hooks",
        ),
        ([{"hook": "order-sign"}], "The pasted JSON is list, not an object"),
        ({"context": {}}, "The request has no &quot;hook&quot; field"),
        ({"hook": "appointment-book"}, "Hook &#x27;appointment-book&#x27; is not one this service answers"),
    ],
)
def test_pasting_something_else_says_what_is_wrong(preview, pasted, says):
    response = preview.post("/preview", json=pasted)
    assert response.status_code == 400
    assert says in response.text, response.text[-600:]
    assert "None" not in response.text.split("<main>", 1)[1]  # no Python None for a missing hook
