"""The card preview in a real browser: Debian's headless Chromium against the app served by uvicorn.

Proves what the string checks of ``test_preview.py`` cannot: that a browser parsing the page, with the card
Markdown rendered with raw HTML on and **no Content-Security-Policy**, builds no element and runs no handler
from the record text (an injected ``document.title='pwned'`` would show in the dumped DOM).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.paths import REPO
from tests.servers import service
from tests.web.test_preview import HOSTILE_CONCLUSION, hostile_request

pytestmark = pytest.mark.integration


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
HOSTILE_TITLE = (
    "Hostile <script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">"
)


class Dom(HTMLParser):
    """Elements, table rows (as cell texts) and the document title of a dumped DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.rows: list[list[str]] = []
        self.title = ""
        self.text: list[str] = []
        self._in_title = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "title":
            self._in_title = True
        elif tag == "tr":
            self.rows.append([])
        elif tag in {"td", "th"}:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in {"td", "th"} and self._cell is not None and self.rows:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_title:
            self.title += data
        if self._cell is not None:
            self._cell.append(data)


def parse(html: str) -> Dom:
    dom = Dom()
    dom.feed(html)
    dom.close()
    return dom


def write_fixtures(root: Path) -> None:
    """The published case, and a hostile patient whose title and report text carry markup."""
    shutil.copytree(REPO / "fhir_fixtures" / "01-published-case", root / "01-published-case")
    hostile = root / "99-hostile"
    hostile.mkdir()
    (hostile / "bundle.json").write_text(json.dumps({"resourceType": "Bundle", "type": "transaction"}))
    (hostile / "request.json").write_text(json.dumps(hostile_request()))
    expected = {
        "title": HOSTILE_TITLE,
        "description": HOSTILE_CONCLUSION,
        "hook": "order-sign",
        "expected": {"card": "warning", "classification": "meets", "total": 25},
    }
    (hostile / "expected.json").write_text(json.dumps(expected))


@pytest.fixture
def server(tmp_path):
    """The app in dev mode under uvicorn on a free loopback port; yields its base URL."""
    fixtures = tmp_path / "fixtures"
    write_fixtures(fixtures)
    env = service.dev_env(tmp_path, extra={"IGG4_CDS_FIXTURES_DIR": str(fixtures)})
    started = service.start(tmp_path, env, log_name="uvicorn.log")
    try:
        yield started.base_url
    finally:
        started.stop()


def scored_rows(dom: Dom) -> dict[str, tuple[str, str]]:
    """The card's domain table as {domain: (points, finding and evidence)}; its cells read "19" and
    "Pancreas and biliary tree: involvement — …"."""
    rows = {}
    for row in dom.rows:
        if len(row) == 2 and row[0].isdigit():
            domain, _, finding = row[1].partition(":")
            rows[domain.split(" (")[0].strip()] = (row[0], finding.strip())
    return rows


@pytest.fixture
def chromium(tmp_path):
    """Run headless Chromium with a fresh profile; returns its stdout."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found (Debian package 'chromium'; scripts/test installs it as root)")
    runs = iter(range(1000))

    def run(*args: str) -> str:
        profile = tmp_path / f"chromium-profile-{next(runs)}"
        command = [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        except subprocess.TimeoutExpired:
            pytest.fail(f"chromium did not finish in 120 s: {args}")
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    return run


def test_published_case_in_chromium(server, chromium, tmp_path):
    dom = parse(chromium("--virtual-time-budget=3000", "--dump-dom", f"{server}/preview/01-published-case"))
    text = " ".join(dom.text)
    assert "Consider IgG4-related disease before presuming cholangiocarcinoma" in text
    rows = scored_rows(dom)
    assert rows["Serum IgG4"][0] == "6"
    assert rows["Pancreas and biliary tree"][0] == "19"
    assert rows["Kidney"][0] == "10"
    assert rows["Total"][0] == "35"
    assert "histopathology (no tissue)" in text and "retroperitoneum (not imaged)" in text
    assert dom.title.startswith("Card preview: Published case")
    assert not any(tag in {"script", "img"} for tag, _ in dom.tags)

    shot = tmp_path / "published-case.png"
    chromium("--window-size=1280,1700", f"--screenshot={shot}", f"{server}/preview/01-published-case")
    assert shot.is_file()
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 10_000


def test_hostile_record_runs_nothing_without_csp(server, chromium):
    with urllib.request.urlopen(f"{server}/preview/99-hostile?csp=0", timeout=10) as response:
        assert response.headers.get("Content-Security-Policy") is None  # the escaping stands alone
    dom = parse(chromium("--virtual-time-budget=3000", "--dump-dom", f"{server}/preview/99-hostile?csp=0"))
    assert dom.title.strip() != "pwned"
    assert dom.title.startswith("Card preview: Hostile <script>")  # the title text, shown as text
    assert not [tag for tag, _ in dom.tags if tag in {"script", "img", "iframe", "object", "embed"}]
    for tag, attrs in dom.tags:
        assert not [name for name in attrs if name.startswith("on")], (tag, attrs)
        assert not any("javascript:" in (value or "").lower() for value in attrs.values()), (tag, attrs)
    rows = scored_rows(dom)
    assert rows["Pancreas and biliary tree"][0] == "19"
    evidence = rows["Pancreas and biliary tree"][1]
    assert "Diffuse enlargement of the pancreas" in evidence
    assert "<img src=x" in evidence and "<script>" in evidence  # visible as text, not as elements
    assert "Consider IgG4-related disease" in " ".join(dom.text)


SANDBOX_LIKE_STYLE = """body{margin:0;font:14px/1.42857 "Helvetica Neue",Helvetica,Arial,sans-serif;background:#fff}
#card{width:718px;padding:0 10px;box-sizing:border-box}
table{border-collapse:collapse;border-spacing:0}th,td{padding:0;border:0;text-align:left;vertical-align:top}
p{margin:0 0 10px}ul{margin:0 0 10px}"""
"""How the CDS Hooks sandbox draws a card detail: 718 px wide, tables without borders or padding."""


def test_published_case_detail_reads_in_one_screen_without_borders(chromium, tmp_path):
    from cds_service.fixtures.catalog import FIXTURE_DATE, load_fixture  # noqa: PLC0415
    from cds_service.hooks.discovery import find_service  # noqa: PLC0415
    from cds_service.hooks.handler import handle_hook  # noqa: PLC0415
    from cds_service.settings import Settings  # noqa: PLC0415
    from cds_service.web.preview import render_markdown  # noqa: PLC0415

    request = load_fixture("01-published-case").request
    outcome = handle_hook(
        find_service("igg4rd-order-sign"), request, Settings(database_url="sqlite://"), today=FIXTURE_DATE
    )
    html = render_markdown(outcome.cards[0]["detail"])
    assert ">Points\xa0\xa0</th>" in html  # a gap between the header cells even without padding
    page = tmp_path / "detail.html"
    page.write_text(
        f"<!doctype html><html><head><meta charset=utf-8><title>-</title><style>{SANDBOX_LIKE_STYLE}</style>"
        f"</head><body><div id=card>{html}</div><script>"
        "document.title=Math.round(document.getElementById('card').getBoundingClientRect().height)"
        "</script></body></html>"
    )
    dom = parse(chromium("--window-size=740,1200", "--dump-dom", page.as_uri()))
    height = int(dom.title)
    assert height <= 600, height  # the old detail (a row per domain, whole sentences) drew about 1,050 px
    assert [row[0] for row in dom.rows[1:]] == ["6", "19", "10", "35"]
