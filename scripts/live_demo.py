"""Live demo: every fixture patient through a real FHIR server and the service, without prefetch.

Run through ``scripts/live-demo`` (which sets up ``.venv`` and ``.venv-fhir`` first), or directly with the
project's interpreter: ``.venv/bin/python scripts/live_demo.py [--fixtures PATTERN] [--keep-running]``.

It starts, all on 127.0.0.1 and on free ports, inside one throwaway directory:

1. sekmet-fhir (from ``$IGG4_FHIR_SERVER_VENV``, default ``.venv-fhir``) with an empty data directory;
2. the CDS service, ``<this python> -m uvicorn cds_service.web.app:app``, in development mode (loopback FHIR
   servers allowed, unauthenticated calls) with a throwaway SQLite feedback store;

then loads the fixture Bundles into the FHIR server (printing the load report), sends each fixture's hook
request with its prefetch removed and ``fhirServer`` set to the local FHIR base, prints one line per patient
and compares the card with the fixture's ``expected.json``. Everything it started is stopped in ``finally``
and the throwaway directory is removed. Exit status 0 when every patient matches, 1 otherwise.
"""

from __future__ import annotations

import argparse
import copy
import fnmatch
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Final

import requests

REPO: Final = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without relying on the editable install's path

from cds_service.fixtures.catalog import FIXTURE_DATE, Fixture, list_fixtures  # noqa: E402
from cds_service.fixtures.loader import LoadReport, load_bundles  # noqa: E402
from cds_service.hooks.cards import EXTENSION_KEY  # noqa: E402 - after the sys.path set-up
from cds_service.hooks.discovery import SERVICE_FOR_HOOK  # noqa: E402

sys.path.insert(0, str(REPO / "tests"))  # the sekmet-fhir start/stop code shared with the tests (no pytest)
from tests.servers import process, sekmet  # noqa: E402
from tests.servers import service as dev_service  # noqa: E402
from tests.servers.process import ServerError  # noqa: E402

STARTUP_TIMEOUT_S: Final = 30.0
CALL_TIMEOUT_S: Final = 30.0
STOP_GRACE_S: Final = 10.0
OK_MARK: Final = "✓"
FAIL_MARK: Final = "✗"

EPILOG: Final = f"""\
Evaluation date: the fixture records use absolute dates chosen for an evaluation on {FIXTURE_DATE}, but the
service evaluates on today's (UTC) date and cannot be told otherwise through its environment. Laboratory
results count within a 3-year lookback window, so the results stay as expected.json states until 2029
(checked with pinned dates: all match on 2029-02-10; from 2029-02-11 the oldest counted labs start leaving
the window and lab-dependent patients show as not matching). The tests pin the date; this demo cannot.

Environment: IGG4_FHIR_SERVER_VENV (sekmet-fhir venv, default .venv-fhir), IGG4_CDS_FIXTURES_DIR (fixtures
directory), IGG4_CDS_HOOK_TIME_BUDGET_S and IGG4_CDS_LOG_LEVEL (passed on to the service).
"""


DemoError = ServerError  # a server could not be started (the fixtures' load failing is reported on its own)


@dataclass
class Started:
    """A process this demo started, with where its output goes."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path


def wait_until_up(started: Started, probe_url: str, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
    """Poll ``probe_url`` until it answers 200; raise :class:`DemoError` if the process dies or time runs out."""
    process.wait_until_answers(started.name, started.process, probe_url, started.log_path, timeout_s)


def stop(started: Started) -> None:
    """Stop a started process group: SIGTERM, wait, then SIGKILL."""
    process.stop_process(started.process, STOP_GRACE_S)


def start_fhir(workdir: Path, started: list[Started]) -> Started:
    """Start sekmet-fhir (``tests/servers/sekmet.py``) on a free loopback port with an empty data directory.

    Everything lives under ``workdir``. The process is appended to ``started`` as soon as it exists, so the
    caller stops it even when waiting for it fails or is interrupted.
    """
    fhir = sekmet.launch(workdir, log_name="fhir-server.log")
    server = Started("sekmet-fhir", fhir.process, fhir.base_url, fhir.log_path)
    started.append(server)
    fhir.wait_until_up()
    return server


def start_service(workdir: Path, started: list[Started]) -> Started:
    """Start the CDS service with uvicorn on a free loopback port, dev mode, throwaway SQLite store.

    Appended to ``started`` as soon as it exists, like :func:`start_fhir`.
    """
    passed_on = {name: os.environ[name] for name in ("IGG4_CDS_HOOK_TIME_BUDGET_S",) if name in os.environ}
    env = dev_service.dev_env(workdir, os.environ.get("IGG4_CDS_LOG_LEVEL", "INFO"), passed_on)
    launched = dev_service.launch(workdir, env)
    server = Started("CDS service", launched.process, launched.base_url, launched.log_path)
    started.append(server)
    wait_until_up(server, f"{launched.base_url}/cds-services")
    return server


def select_fixtures(pattern: str | None) -> list[Fixture]:
    """The fixtures whose directory name matches ``pattern`` (a glob, or a substring when it has no wildcard)."""
    fixtures = list_fixtures()
    if not pattern:
        return fixtures
    if any(c in pattern for c in "*?["):
        return [f for f in fixtures if fnmatch.fnmatch(f.name, pattern)]
    return [f for f in fixtures if pattern in f.name]


def mismatches(fixture: Fixture, status: int, body: Any) -> list[str]:
    """How the response differs from the fixture's ``expected.json`` (empty when it matches)."""
    expected = fixture.expected.get("expected") or {}
    if status != 200 or not isinstance(body, dict):
        return [f"HTTP {status}"]
    cards = body.get("cards") or []
    if expected.get("card") == "none":
        return [] if not cards else [f"expected no card, got {len(cards)}"]
    if len(cards) != 1:
        return [f"expected one {expected.get('card')} card, got {len(cards)}"]
    card = cards[0]
    result = card.get("extension", {}).get(EXTENSION_KEY, {})
    got = {
        "card": card.get("indicator"),
        "classification": result.get("classification"),
        "total": result.get("total"),
        "domains": {d: v["points"] for d, v in result.get("domains", {}).items() if v.get("points")},
        "exclusions": {e["id"]: e["status"] for e in result.get("exclusions", [])},
        "suggestedLoinc": sorted(
            a["resource"]["code"]["coding"][0]["code"]
            for s in card.get("suggestions", [])
            for a in s.get("actions", [])
        ),
    }
    wanted = {**expected, "suggestedLoinc": sorted(expected.get("suggestedLoinc", []))}
    return [
        f"{key}: expected {wanted.get(key)!r}, got {value!r}"
        for key, value in got.items()
        if wanted.get(key) != value
    ]


def load_summary(report: LoadReport) -> str:
    """One line per Bundle (entries and outcomes), then the report's own totals line."""
    outcomes: dict[str, Counter[str]] = {}
    for entry in report.entries:
        outcomes.setdefault(entry.bundle, Counter())[entry.outcome] += 1
    width = max((len(name) for name in outcomes), default=0)
    lines = [
        f"{name:<{width}}  {sum(counts.values()):>3} entries: "
        + ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
        for name, counts in outcomes.items()
    ]
    return "\n".join([*lines, report.table().splitlines()[-1]])


def run_fixture(service_url: str, fhir_base: str, fixture: Fixture, width: int) -> bool:
    """Send the fixture's request without prefetch, print its line, and say whether it matched."""
    request = copy.deepcopy(fixture.request)
    request.pop("prefetch", None)
    request["fhirServer"] = fhir_base
    hook = str(request.get("hook"))
    try:
        response = requests.post(
            f"{service_url}/cds-services/{SERVICE_FOR_HOOK[hook]}", json=request, timeout=CALL_TIMEOUT_S
        )
        status: int | str = response.status_code
        try:
            body: Any = response.json()
        except ValueError:
            body = None
    except requests.RequestException as exc:
        status, body = f"error ({type(exc).__name__})", None
    problems = mismatches(fixture, status, body) if isinstance(status, int) else [str(status)]
    cards = body.get("cards") if isinstance(body, dict) else None
    if cards:
        card = cards[0]
        result = card.get("extension", {}).get(EXTENSION_KEY, {})
        indicator, summary = str(card.get("indicator")), str(card.get("summary"))
        total, classification = f"{result.get('total', '-')} pts", str(result.get("classification", "-"))
    else:
        indicator, summary, total, classification = "no card", "", "-", "-"
    mark = FAIL_MARK if problems else OK_MARK
    print(
        f"{fixture.name:<{width}}  {hook:<12}  {status!s:>3}  {indicator:<7}  {total:>6}  {classification:<13}  "
        f"{summary}  {mark}",
        flush=True,
    )
    for problem in problems:
        print(f"{'':<{width}}  {FAIL_MARK} {problem}", flush=True)
    return not problems


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="live-demo",
        description=(
            "Start a real FHIR server (sekmet-fhir) and the CDS service on loopback, load the fixture patients, "
            "call each hook without prefetch (the service fetches from the FHIR server) and check every card "
            "against expected.json. Exit 0 when all match, 1 otherwise."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="leave both servers up after the run, printing their URLs, until Ctrl-C",
    )
    parser.add_argument(
        "--fixtures",
        metavar="PATTERN",
        help="only fixtures whose name matches (a glob such as '0[1-5]-*', or a substring such as 'igg4')",
    )
    parser.add_argument(
        "--full-report",
        action="store_true",
        help="print the load report entry by entry (default: one line per Bundle; in full when anything failed)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; return the exit status."""
    args = parse_args(argv)
    fixtures = select_fixtures(args.fixtures)
    if not fixtures:
        print(f"no fixture matches {args.fixtures!r}", file=sys.stderr)
        return 1
    # `finally` must run however we are stopped: Ctrl-C (also when started in the background, where a shell
    # leaves SIGINT ignored), kill, or the terminal closing.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_interrupt)
    workdir = Path(tempfile.mkdtemp(prefix="igg4-live-demo-"))
    started: list[Started] = []
    matched = 0
    began = time.monotonic()
    try:
        fhir = start_fhir(workdir / "fhir", started)
        print(f"FHIR server: {fhir.url} (pid {fhir.process.pid})", flush=True)
        service = start_service(workdir, started)
        print(f"CDS service: {service.url} (pid {service.process.pid})", flush=True)
        print(f"servers up in {time.monotonic() - began:.1f} s", flush=True)

        load_start = time.monotonic()
        report = load_bundles(fhir.url, [(f.name, f.bundle) for f in fixtures])
        print(f"\nLoad report ({time.monotonic() - load_start:.1f} s):", flush=True)
        print(report.table() if args.full_report or not report.ok else load_summary(report), flush=True)
        print(flush=True)
        if not report.ok:
            print("loading the fixtures failed: not calling the service", file=sys.stderr)
            return 1

        calls_start = time.monotonic()
        width = max(len(f.name) for f in fixtures)
        for fixture in fixtures:
            matched += run_fixture(service.url, fhir.url, fixture, width)
        print(
            f"\n{matched}/{len(fixtures)} fixtures match expected.json "
            f"(calls {time.monotonic() - calls_start:.1f} s, total {time.monotonic() - began:.1f} s)",
            flush=True,
        )
        if args.keep_running:
            print(
                f"\nServers left running until Ctrl-C (logs and data in {workdir}):\n"
                f"  FHIR server  {fhir.url}\n  CDS service  {service.url}\n"
                f"e.g. curl {service.url}/cds-services\n"
                f"     curl '{fhir.url}/Patient/f01-patient'",
                flush=True,
            )
            try:
                while all(s.process.poll() is None for s in started):
                    time.sleep(0.5)
                print("a server exited; stopping", file=sys.stderr)
                return 1
            except KeyboardInterrupt:
                print("stopping the servers", file=sys.stderr)
    except DemoError as exc:
        print(f"live demo failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 1
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)  # let the clean-up finish
        for server in reversed(started):
            stop(server)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if matched == len(fixtures) else 1


if __name__ == "__main__":
    raise SystemExit(main())
