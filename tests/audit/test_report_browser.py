"""report.html in headless Chromium: it loads offline, with its five plots drawn."""

from __future__ import annotations

import subprocess
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image as mpimg
import pytest

from cds_service.cli import main
from tests.audit.cards import EVALUATION_DATE
from tests.audit.population import FIXTURES

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _chromium(tmp_path: Path, *args: str) -> str:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found (Debian package 'chromium'; scripts/test installs it as root)")
    command = [str(CHROMIUM), *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_report_opens_in_chromium_with_its_plots(export_dir, tmp_path):
    out = tmp_path / "out"
    assert (
        main(
            [
                "audit",
                "--ndjson",
                str(export_dir),
                "--out",
                str(out),
                "--workers",
                "1",
                "--no-progress",
                "--mark-fixtures",
                str(FIXTURES),
                "--today",
                EVALUATION_DATE,
            ]
        )
        == 0
    )
    url = (out / "report.html").resolve().as_uri()
    parser = Tags()
    parser.feed(_chromium(tmp_path, "--dump-dom", url))
    names = [tag for tag, _ in parser.tags]
    assert names.count("figure") == 5
    assert names.count("svg") >= 5
    assert "script" not in names
    external = [
        a for _, a in parser.tags for k in ("src", "href") if (a.get(k) or "").startswith(("http", "//"))
    ]
    assert external == []  # everything inline: the page works offline
    assert any(a.get("id") == "fixtures" for t, a in parser.tags if t == "table")

    shot = tmp_path / "report.png"
    _chromium(tmp_path, "--window-size=1000,3000", f"--screenshot={shot}", url)
    pixels = mpimg.imread(shot)
    drawn = (pixels[..., :3].sum(axis=2) < 2.5).mean()  # share of pixels that are not (near) white
    assert drawn > 0.03, drawn
