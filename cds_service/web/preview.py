"""Development-mode card preview: the cards as an EHR would show them, for integrators and clinicians.

``GET /preview`` lists the fixture patients; ``GET /preview/{fixture}`` runs one fixture's ready request
through :func:`cds_service.hooks.handler.handle_hook` and renders the card(s); ``POST /preview`` does the same for
a pasted hook request. The card ``detail`` is rendered as Markdown **with raw HTML enabled**, as the CDS
Hooks sandbox does, so the page shows exactly what an EHR that trusts the Markdown would show: the
escaping of record text (:mod:`cds_service.hooks.markdown`) is what keeps it inert. Everything the preview itself
writes into the page goes through :func:`html.escape`; no script is ever served, and a strict
Content-Security-Policy is sent as defence in depth (``?csp=0`` leaves it out, for the browser test that
proves the escaping holds without it).

Mounted by :func:`cds_service.web.app.create_app` only when ``settings.dev_mode`` is true. No FHIR server is
ever queried from here (a pasted request must carry its prefetch) and nothing is recorded.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from html import escape
from importlib.resources import files
from typing import Any, Final
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from markdown_it import MarkdownIt
from starlette.concurrency import run_in_threadpool

from cds_service.errors import CDSError
from cds_service.fixtures.catalog import FIXTURE_DATE, Fixture, fixture_dirs, load_fixture
from cds_service.hooks.cards import EXTENSION_KEY
from cds_service.hooks.discovery import SERVICE_FOR_HOOK, find_service
from cds_service.hooks.handler import handle_hook
from cds_service.settings import Settings

CSP: Final = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; base-uri 'none'"
)
"""The preview's Content-Security-Policy: no script, no external resource, forms post back here only."""

INDICATORS: Final = {
    # indicator: (band colour, badge background, badge text colour, label, header tint)
    "critical": ("#b3261e", "#b3261e", "#ffffff", "Critical", "#fdecea"),
    "warning": ("#e8a317", "#f6c343", "#3b2a00", "Warning", "#fff6dc"),
    "info": ("#1f6fb2", "#1f6fb2", "#ffffff", "Info", "#e8f1fa"),
}

_MARKDOWN = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
"""The sandbox's rendering: CommonMark plus GFM tables, raw HTML passed through."""

_EXAMPLE_HINT: Final = (
    '{"hook": "order-sign", "hookInstance": "…", "context": {…}, "prefetch": {…}}  '
    "(a fixture's request.json works as is)"
)

_STYLE: Final = "\n" + files("cds_service.web").joinpath("preview.css").read_text(encoding="utf-8")
"""The page's style sheet (``preview.css``, package data), inlined in each page's ``<style>``."""


@dataclass(frozen=True)
class Rendered:
    """One preview page: its HTML and HTTP status."""

    html: str
    status: int = 200


def _safe_url(url: Any) -> str | None:
    """``url`` when it is an absolute http(s) URL, else ``None`` (never a ``javascript:`` link)."""
    if not isinstance(url, str):
        return None
    try:
        scheme = urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return None
    return url.strip() if scheme in {"http", "https"} else None


def render_markdown(text: str) -> str:
    """Card Markdown as HTML, with raw HTML passed through exactly as the CDS Hooks sandbox does."""
    html: str = _MARKDOWN.render(text)
    return html


def _pill(indicator: str) -> str:
    colours = INDICATORS.get(indicator)
    if colours is None:
        return f'<span class="pill none">{escape(indicator or "none")}</span>'
    _band, background, foreground, label, _tint = colours
    return f'<span class="pill" style="background:{background};color:{foreground}">{escape(label)}</span>'


def render_card(card: Mapping[str, Any]) -> str:
    """One card as an EHR shows it: colour band, summary, rendered detail, source, suggestions, overrides."""
    indicator = str(card.get("indicator", "info"))
    band, background, foreground, label, tint = INDICATORS.get(
        indicator, ("#8a97a6", "#8a97a6", "#fff", indicator, "#f4f6f8")
    )
    parts = [
        f'<article class="card card-{escape(indicator)}">',
        f'<div class="band" style="background:{band}"></div>',
        '<div class="body">',
        f'<div class="top" style="background:{tint}">',
        f'<span class="badge" style="background:{background};color:{foreground}">{escape(label)}</span>',
        f'<p class="summary">{escape(str(card.get("summary", "")))}</p>',
        "</div>",
    ]
    detail = card.get("detail")
    if isinstance(detail, str) and detail:
        # The detail is rendered, not escaped: this is what the EHR does with it.
        parts.append(f'<div class="detail">{render_markdown(detail)}</div>')
    source = card.get("source")
    if isinstance(source, Mapping):
        label_text = escape(str(source.get("label", "")))
        url = _safe_url(source.get("url"))
        linked = f'<a href="{escape(url)}" rel="noreferrer">{label_text}</a>' if url else label_text
        parts.append(f'<p class="source">Source: {linked}</p>')
    parts.extend(_card_links(card.get("links")))
    parts.extend(_card_actions(card))
    parts.append("</div></article>")
    return "\n".join(parts)


def _card_links(links: Any) -> list[str]:
    items = []
    for link in links if isinstance(links, list) else []:
        if not isinstance(link, Mapping):
            continue
        url = _safe_url(link.get("url"))
        text = escape(str(link.get("label", url or "")))
        items.append(f'<a href="{escape(url)}" rel="noreferrer">{text}</a>' if url else text)
    return [f'<p class="source">Links: {" · ".join(items)}</p>'] if items else []


def _card_actions(card: Mapping[str, Any]) -> list[str]:
    """Suggestions as (inert) buttons and override reasons as a select, as the EHR would offer them."""
    buttons = []
    suggestions = card.get("suggestions")
    for suggestion in suggestions if isinstance(suggestions, list) else []:
        if isinstance(suggestion, Mapping):
            text = escape(str(suggestion.get("label", "")))
            buttons.append(
                f'<button type="button" class="suggest" disabled title="preview only">{text}</button>'
            )
    reasons = card.get("overrideReasons")
    options = [
        f'<option value="{escape(str(r.get("code", "")))}">{escape(str(r.get("display", r.get("code", ""))))}</option>'
        for r in (reasons if isinstance(reasons, list) else [])
        if isinstance(r, Mapping)
    ]
    if options:
        select_id = f"override-{escape(str(card.get('uuid', '')))}"
        buttons.append(
            f'<span class="override"><label for="{select_id}">Dismiss because</label>'
            f'<select id="{select_id}"><option value="">choose a reason…</option>{"".join(options)}</select>'
            '<button type="button" class="dismiss" disabled title="preview only">Dismiss</button></span>'
        )
    if not buttons:
        return []
    return ['<div class="actions">', *buttons, "</div>"]


def _page(title: str, body: Iterable[str]) -> str:
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            '<meta name="referrer" content="no-referrer">',
            f"<title>{escape(title)}</title>",
            f"<style>{_STYLE}</style>",
            "</head><body>",
            '<header class="bar"><strong>IgG4-RD CDS card preview</strong>',
            '<span class="dev">development mode: synthetic data, not for clinical use</span>',
            '<a href="/preview">all patients</a></header>',
            "<main>",
            *body,
            "</main></body></html>",
        ]
    )


def _cards_section(cards: Sequence[Mapping[str, Any]]) -> list[str]:
    if not cards:
        return ['<div class="nocard">No card: the service stays silent for this request.</div>']
    return [render_card(card) for card in cards]


def _response_json(cards: Sequence[Mapping[str, Any]]) -> str:
    text = json.dumps({"cards": list(cards)}, indent=2, ensure_ascii=False)
    return f"<details><summary>CDS Hooks response JSON</summary><pre>{escape(text)}</pre></details>"


def _expectation(expected: Mapping[str, Any], cards: Sequence[Mapping[str, Any]]) -> str:
    """Expected card (from ``expected.json``) next to what the service returned, with a match mark."""
    wanted = expected.get("expected") if isinstance(expected.get("expected"), Mapping) else {}
    assert isinstance(wanted, Mapping)
    want_card = str(wanted.get("card", "?"))
    got_card = str(cards[0].get("indicator")) if cards else "none"
    total = wanted.get("total")
    got_total: Any = None
    if cards:
        extension = cards[0].get("extension")
        summary = extension.get(EXTENSION_KEY) if isinstance(extension, Mapping) else None
        got_total = summary.get("total") if isinstance(summary, Mapping) else None
    matches = want_card == got_card and (total is None or total == got_total)
    expected_text = f"{want_card} card" + (f", {total} points" if total is not None else "")
    mark = (
        '<span class="check ok">matches the service</span>'
        if matches
        else f'<span class="check bad">service gave {escape(got_card)}'
        + (f", {escape(str(got_total))} points" if got_total is not None else "")
        + "</span>"
    )
    return f"Expected: {escape(expected_text)} {mark}"


def not_a_hook_request(body: Any) -> str:
    """What is wrong with pasted JSON that is not a hook request this service answers, and what to paste."""
    supported = ", ".join(sorted(SERVICE_FOR_HOOK))
    shape = f"Paste a CDS Hooks request: {_EXAMPLE_HINT}."
    if not isinstance(body, dict):
        return f"The pasted JSON is {type(body).__name__ if body is not None else 'null'}, not an object. {shape}"
    resource_type = body.get("resourceType")
    if isinstance(resource_type, str):
        return (
            f"This is a FHIR {resource_type[:60]}, not a CDS Hooks request. {shape} Patient data goes under "
            '"prefetch", one search-result Bundle per key (patient, conditions, observations, reports, …: '
            "the prefetch templates of GET /cds-services)."
        )
    hook = body.get("hook")
    if hook is None:
        return f'The request has no "hook" field (this service answers {supported}). {shape}'
    return f"Hook {str(hook)[:60]!r} is not one this service answers ({supported})."


def _evaluate(body: Any, settings: Settings, today: date) -> tuple[list[dict[str, Any]], str | None, int]:
    """(cards, error message, status) for one hook request; never queries a FHIR server."""
    hook = body.get("hook") if isinstance(body, dict) else None
    service_id = SERVICE_FOR_HOOK.get(hook) if isinstance(hook, str) else None
    if service_id is None:
        return [], not_a_hook_request(body), 400
    try:
        outcome = handle_hook(find_service(service_id), body, settings, None, today=today)
    except CDSError as exc:
        return [], f"{type(exc).__name__} (HTTP {exc.status_code}): {exc}", exc.status_code
    return outcome.cards, None, 200


def _fixtures() -> dict[str, Fixture]:
    return {path.name: load_fixture(path) for path in fixture_dirs()}


def render_index() -> str:
    """The index: every fixture patient with its hook and expected card, and the paste-a-request form."""
    rows = []
    for name, fixture in _fixtures().items():
        expected = fixture.expected
        wanted = expected.get("expected") if isinstance(expected.get("expected"), Mapping) else {}
        assert isinstance(wanted, Mapping)
        card = str(wanted.get("card", "?"))
        total = wanted.get("total")
        points = f" {escape(str(total))} pts" if total is not None else ""
        rows.append(
            f'<tr><td class="name"><a href="/preview/{quote(name)}">{escape(name)}</a></td>'
            f"<td>{escape(str(expected.get('title', '')))}</td>"
            f'<td class="nowrap"><code>{escape(str(expected.get("hook", fixture.request.get("hook", ""))))}'
            f'</code></td><td class="nowrap">{_pill(card)}{points}</td></tr>'
        )
    body = [
        "<h1>Fixture patients</h1>",
        f'<p class="meta">Synthetic patients from <code>fhir_fixtures/</code>, evaluated on '
        f"{FIXTURE_DATE.isoformat()} (the date they were written for). Open one to see its card.</p>",
        '<table class="fixtures"><thead><tr><th>Patient</th><th>Scenario</th><th>Hook</th>'
        "<th>Expected card</th></tr></thead><tbody>",
        *rows,
        "</tbody></table>",
        "<h2>Preview any hook request</h2>",
        '<form class="paste" method="post" action="/preview">',
        f'<textarea name="request" required placeholder="{escape(_EXAMPLE_HINT)}"></textarea>',
        '<div class="row"><label>Evaluation date <input type="date" name="today" '
        f'value="{FIXTURE_DATE.isoformat()}"></label>',
        '<button type="submit">Render cards</button></div>',
        '<p class="meta">The request must carry its prefetch: the preview never queries a FHIR server '
        "and records nothing.</p>",
        "</form>",
    ]
    return _page("Card preview: fixture patients", body)


def render_fixture(name: str, settings: Settings) -> Rendered:
    """One fixture's request run through the service, its card(s) rendered as the EHR would."""
    fixture = _fixtures().get(name)
    if fixture is None:
        return Rendered(
            _page("Not found", [f'<div class="error">No fixture named {escape(name)}.</div>']), 404
        )
    cards, error, status = _evaluate(fixture.request, settings, FIXTURE_DATE)
    expected = fixture.expected
    hook = str(fixture.request.get("hook", ""))
    body = [
        f"<h1>{escape(str(expected.get('title', name)))}</h1>",
        f'<p class="meta"><code>{escape(name)}</code> · hook <code>{escape(hook)}</code> · evaluated on '
        f"{FIXTURE_DATE.isoformat()} · {_expectation(expected, cards)}</p>",
    ]
    if error:
        body.append(f'<div class="error">{escape(error)}</div>')
    body.extend(_cards_section(cards))
    description = expected.get("description")
    if isinstance(description, str) and description:
        body.append(f"<details><summary>About this patient</summary><p>{escape(description)}</p></details>")
    body.append(_response_json(cards))
    return Rendered(_page(f"Card preview: {expected.get('title', name)}", body), status)


def render_request(body: Any, settings: Settings, today: date = FIXTURE_DATE) -> Rendered:
    """A pasted hook request run through the service, its card(s) rendered as the EHR would."""
    cards, error, status = _evaluate(body, settings, today)
    hook = body.get("hook") if isinstance(body, dict) else None
    parts = [
        "<h1>Pasted hook request</h1>",
        f'<p class="meta">hook <code>{escape(hook if isinstance(hook, str) else "none")}</code> · evaluated on '
        f"{today.isoformat()}</p>",
    ]
    if error:
        parts.append(f'<div class="error">{escape(error)}</div>')
    else:
        parts.extend(_cards_section(cards))
        parts.append(_response_json(cards))
    return Rendered(_page("Card preview: pasted request", parts), status)


def _html(rendered: Rendered, request: Request) -> HTMLResponse:
    """The page with its security headers (the CSP left out only for ``?csp=0``, the browser test's switch)."""
    headers = {
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }
    if request.query_params.get("csp") != "0":
        headers["Content-Security-Policy"] = CSP
    return HTMLResponse(rendered.html, status_code=rendered.status, headers=headers)


def _parse_date(value: str | None) -> date | None:
    if not value:
        return FIXTURE_DATE
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def preview_router(settings: Settings) -> APIRouter:
    """The ``/preview`` routes (include only in development mode)."""
    router = APIRouter(prefix="/preview", include_in_schema=False)

    @router.get("")
    async def index(request: Request) -> HTMLResponse:
        """The fixture list and the paste-a-request form."""
        return _html(Rendered(await run_in_threadpool(render_index)), request)

    @router.get("/{fixture}")
    async def fixture(fixture: str, request: Request) -> HTMLResponse:
        """One fixture's card(s)."""
        return _html(await run_in_threadpool(render_fixture, fixture, settings), request)

    @router.post("")
    async def pasted(request: Request) -> HTMLResponse:
        """A pasted request: a JSON body, or the index form (``request`` and ``today`` fields)."""
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > settings.max_body_bytes:
                break
        if len(raw) > settings.max_body_bytes:
            return _html(
                _error_page(f"Request body over the {settings.max_body_bytes}-byte limit.", 413), request
            )
        text = raw.decode("utf-8", errors="replace")
        today_text = request.query_params.get("today")
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            form = parse_qs(text, keep_blank_values=True)
            text = form.get("request", [""])[0]
            today_text = form.get("today", [today_text or ""])[0]
        return _html(await _render_pasted(text, today_text), request)

    async def _render_pasted(text: str, today_text: str | None) -> Rendered:
        today = _parse_date(today_text)
        if today is None:
            return _error_page(f"Evaluation date {today_text!r} is not YYYY-MM-DD.", 400)
        try:
            body = json.loads(text)
        except json.JSONDecodeError as exc:
            return _error_page(f"The request is not valid JSON: {exc.msg} at line {exc.lineno}.", 400)
        return await run_in_threadpool(render_request, body, settings, today)

    return router


def _error_page(message: str, status: int) -> Rendered:
    return Rendered(_page("Card preview: error", [f'<div class="error">{escape(message)}</div>']), status)
