"""The README's feedback walk-through, run as written against the service under uvicorn (issue 11, items 3, 6, 8).

The curl commands post a card's feedback; the export commands write the files the README names. A README
that drifts from the code (a file name, a field, a URL) fails here.
"""

from __future__ import annotations

import csv
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.paths import REPO
from tests.servers import sekmet

pytestmark = pytest.mark.integration

README = REPO / "README.md"


def sh_block_after(marker: str) -> str:
    """The first ```sh block after ``marker`` in the README."""
    text = README.read_text(encoding="utf-8")
    start = text.index(marker)
    match = re.search(r"```sh\n(.*?)```", text[start:], re.S)
    assert match, f"no sh block after {marker!r}"
    return match.group(1)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The service in development mode under uvicorn; yields (base URL, database URL)."""
    database = f"sqlite:///{tmp_path / 'feedback.sqlite3'}"
    port = sekmet.free_port()
    env = {**os.environ, "IGG4_CDS_DEV_MODE": "true", "IGG4_CDS_DATABASE_URL": database}
    env.pop("IGG4_CDS_TRUST_FILE", None)
    command = [sys.executable, "-m", "uvicorn", "cds_service.web.app:app", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--log-level", "warning"]
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "uvicorn.log"
    process = sekmet.spawn("uvicorn", command, env, REPO, log)
    try:
        sekmet.wait_until_answers("uvicorn", process, f"{base}/healthz", log, timeout_s=30)
        yield base, database
    finally:
        sekmet.stop_process(process)


def run_readme(block: str, base: str, database: str, cwd: Path) -> str:
    script = (
        block.replace("http://127.0.0.1:8080", base)
        .replace(".venv/bin/igg4-cds", f"{shlex.quote(sys.executable)} -m cds_service.cli")
        .replace("@fhir_fixtures/", f"@{REPO}/fhir_fixtures/")
    )
    env = {**os.environ, "IGG4_CDS_DATABASE_URL": database}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_readme_feedback_commands_work_and_name_the_files_written(
    service: tuple[str, str], tmp_path: Path
) -> None:
    base, database = service
    work = tmp_path / "work"
    work.mkdir()
    run_readme(sh_block_after("To try it by hand"), base, database, work)
    export = sh_block_after("Export for the CDS committee")
    run_readme(export, base, database, work)

    named = re.findall(r"--out (\S+)\s+# and (\S+)", export)
    assert named, export
    for rows_file, rates_file in named:
        assert (work / rows_file).is_file() and (work / rates_file).is_file(), sorted(os.listdir(work))
        [row] = list(csv.DictReader((work / rows_file).open(encoding="utf-8")))
        assert row["outcome"] == "overridden"
        assert row["override_reason_code"] == "already-considered"
        assert row["override_reason_display"] == "IgG4-related disease already considered or worked up"
