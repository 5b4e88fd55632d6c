"""The one-command live demo (``scripts/live_demo.py``) runs clean: every patient matches, nothing is left over.

Each test runs the demo as a subprocess with this interpreter (bounded; on a timeout it is sent SIGTERM so it
can stop what it started, then killed), reads the FHIR server and service URLs and pids it prints, and checks
afterwards that both ports are closed and both processes are gone. Skipped when sekmet-fhir's venv is missing.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from servers.fhir import server_venv

from cds_service.fixtures.catalog import Fixture, list_fixtures

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "live_demo.py"
RUN_TIMEOUT_S = 120.0
SERVER_LINE = re.compile(r"^(FHIR server|CDS service): (\S+) \(pid (\d+)\)$", re.MULTILINE)


@pytest.fixture(autouse=True)
def _needs_fhir_server() -> None:
    if not (server_venv() / "bin" / "sekmet").exists():
        pytest.skip(f"sekmet-fhir not installed in {server_venv()}: run bash .ci/install-fhir-server.sh")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IGG4_CDS_")}
    env.update(extra)
    return env


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the demo to completion; on timeout SIGTERM it (it cleans up), then fail."""
    with subprocess.Popen(
        [sys.executable, str(SCRIPT), *args],
        cwd=REPO,
        env=env or _env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            out, err = process.communicate(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=30)
            pytest.fail(f"live demo did not finish within {RUN_TIMEOUT_S:.0f} s:\n{out}\n{err}")
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def _servers(output: str) -> dict[str, tuple[str, int]]:
    """``{"FHIR server": (url, pid), "CDS service": (url, pid)}`` from the demo's output."""
    return {m.group(1): (m.group(2), int(m.group(3))) for m in SERVER_LINE.finditer(output)}


def _result_line(output: str, fixture: Fixture) -> str:
    """The demo's line for ``fixture`` (name then hook; the load summary's lines start with the name too)."""
    pattern = re.compile(
        rf"^{re.escape(fixture.name)}\s+{re.escape(fixture.request['hook'])}\s.*$", re.MULTILINE
    )
    [line] = pattern.findall(output)
    return str(line)


def _port_open(url: str) -> bool:
    parts = urlsplit(url)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex((parts.hostname or "127.0.0.1", parts.port or 80)) == 0


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _assert_all_stopped(servers: dict[str, tuple[str, int]]) -> None:
    assert set(servers) == {"FHIR server", "CDS service"}, servers
    for name, (url, pid) in servers.items():
        assert not _port_open(url), f"{name} still listening on {url}"
        assert not _process_alive(pid), f"{name} (pid {pid}) still running"


def test_live_demo_all_fixtures_match_and_nothing_is_left_running():
    result = _run()
    assert result.returncode == 0, result.stdout + result.stderr
    for fixture in list_fixtures():
        line = _result_line(result.stdout, fixture)
        assert line.rstrip().endswith("✓"), line
        assert " 200 " in line, line
    assert "✗" not in result.stdout
    assert re.search(r"^(\d+)/\1 fixtures match expected\.json", result.stdout, re.MULTILINE)
    _assert_all_stopped(_servers(result.stdout))


def test_a_mismatch_exits_1_with_a_cross(tmp_path: Path):
    source = next(f for f in list_fixtures() if f.name.startswith("01-"))
    target = tmp_path / source.name
    shutil.copytree(source.path, target)
    expected = json.loads((target / "expected.json").read_text())
    expected["expected"]["total"] = 34  # the card says 35
    (target / "expected.json").write_text(json.dumps(expected))
    result = _run(env=_env(IGG4_CDS_FIXTURES_DIR=str(tmp_path)))
    assert result.returncode == 1, result.stdout + result.stderr
    line = _result_line(result.stdout, source)
    assert line.rstrip().endswith("✗"), line
    assert "total: expected 34, got 35" in result.stdout
    assert "0/1 fixtures match" in result.stdout
    _assert_all_stopped(_servers(result.stdout))


def test_no_matching_fixture_exits_1_without_starting_anything():
    result = _run("--fixtures", "no-such-fixture")
    assert result.returncode == 1
    assert "no fixture matches" in result.stderr
    assert not _servers(result.stdout)


def test_keep_running_serves_until_interrupted_then_cleans_up():
    lines: queue.Queue[str] = queue.Queue()
    with subprocess.Popen(
        [sys.executable, str(SCRIPT), "--keep-running", "--fixtures", "01-"],
        cwd=REPO,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        assert process.stdout is not None
        reader = threading.Thread(target=lambda: [lines.put(ln) for ln in process.stdout or []], daemon=True)
        reader.start()
        seen: list[str] = []
        deadline = time.monotonic() + RUN_TIMEOUT_S
        try:
            while not any(ln.startswith("Servers left running") for ln in seen):
                assert time.monotonic() < deadline, "".join(seen)
                assert process.poll() is None or not lines.empty(), "".join(seen)
                try:
                    seen.append(lines.get(timeout=1))
                except queue.Empty:
                    continue
            servers = _servers("".join(seen))
            service_url, _ = servers["CDS service"]
            assert requests.get(f"{service_url}/cds-services", timeout=5).status_code == 200
            workdir = Path(re.search(r"logs and data in (\S+)\)", "".join(seen)).group(1))  # type: ignore[union-attr]
            assert workdir.is_dir()
        finally:
            process.send_signal(signal.SIGINT)  # Ctrl-C
            process.wait(timeout=30)
        reader.join(timeout=5)
    assert process.returncode == 0
    _assert_all_stopped(servers)
    assert not workdir.exists()
