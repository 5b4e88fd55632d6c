"""Load FHIR fixture Bundles (``fhir_fixtures/NN-slug/bundle.json``) into a FHIR server, and say what happened.

Each fixture is an R4 transaction Bundle whose entries PUT resources with fixed ids, so loading is idempotent:
the first load creates (201), later loads update (200). :func:`load_bundles` POSTs each Bundle to the server's
base and reads the transaction-response entry by entry. When the server does not do transactions (404, 405,
415, 501, or an OperationOutcome saying ``not-supported``) it falls back to one PUT per entry. When the server
refuses a transaction as a whole (a 4xx rollback), every entry of that Bundle is reported refused with the
server's diagnostics.

:func:`main` is the ``igg4-cds load-fixtures --base-url URL [--token T] [--fixtures DIR]`` command: it prints a
report table and exits non-zero when anything was refused or unreachable. Tokens are never printed or logged.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, TextIO

import requests

log = logging.getLogger(__name__)

FHIR_JSON: Final = "application/fhir+json"
DEFAULT_TIMEOUT_S: Final = 30.0
DEFAULT_FIXTURES_DIR: Final = Path("fhir_fixtures")
_NO_TRANSACTION_STATUSES: Final = frozenset({404, 405, 415, 501})
_MAX_DIAGNOSTICS: Final = 300

Outcome = Literal["created", "updated", "refused", "error"]


@dataclass(frozen=True)
class EntryResult:
    """What happened to one Bundle entry."""

    bundle: str
    index: int
    resource: str  # "Type/id" from request.url (or the resource), for the report
    outcome: Outcome
    status: int | None
    diagnostics: str = ""
    via: Literal["transaction", "put"] = "transaction"


@dataclass
class LoadReport:
    """Per-entry results of one load, in Bundle order."""

    entries: list[EntryResult] = field(default_factory=list)

    def count(self, outcome: Outcome) -> int:
        """How many entries had ``outcome``."""
        return sum(1 for e in self.entries if e.outcome == outcome)

    @property
    def ok(self) -> bool:
        """True when every entry was created or updated."""
        return all(e.outcome in ("created", "updated") for e in self.entries)

    def table(self) -> str:
        """A plain-text table of every entry, then a summary line."""
        header = ("BUNDLE", "#", "RESOURCE", "OUTCOME", "HTTP", "VIA", "DIAGNOSTICS")
        rows = [
            (e.bundle, str(e.index), e.resource, e.outcome, str(e.status or "-"), e.via, e.diagnostics)
            for e in self.entries
        ]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
        lines = []
        for row in [header, *rows]:
            cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
            lines.append("  ".join([*cells, row[-1]]).rstrip())
        lines.append(
            f"{len(self.entries)} entries: {self.count('created')} created, {self.count('updated')} updated, "
            f"{self.count('refused')} refused, {self.count('error')} errors"
        )
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------------


def _status_code(text: object) -> int | None:
    """``"201 Created"`` -> 201."""
    if not isinstance(text, str):
        return None
    head = text.strip().split(" ", 1)[0]
    return int(head) if head.isdigit() else None


def _diagnostics(outcome: object) -> str:
    """The diagnostics (or details text, or code) of an OperationOutcome's issues, joined and shortened."""
    if not isinstance(outcome, dict) or outcome.get("resourceType") != "OperationOutcome":
        return ""
    texts: list[str] = []
    for item in outcome.get("issue") or []:
        if not isinstance(item, dict):
            continue
        text = item.get("diagnostics") or (item.get("details") or {}).get("text") or item.get("code") or ""
        expression = item.get("expression") or item.get("location") or []
        if isinstance(expression, list) and expression:
            text = f"{text} [{', '.join(str(x) for x in expression)}]"
        if text:
            texts.append(str(text))
    joined = "; ".join(texts)
    return joined if len(joined) <= _MAX_DIAGNOSTICS else joined[: _MAX_DIAGNOSTICS - 1] + "…"


def _json(response: requests.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return None


def _entry_label(entry: dict[str, Any]) -> str:
    url = (entry.get("request") or {}).get("url")
    if isinstance(url, str) and url:
        return url
    resource = entry.get("resource") or {}
    return f"{resource.get('resourceType', '?')}/{resource.get('id', '?')}"


def _outcome_for(status: int | None) -> Outcome:
    if status == 201:
        return "created"
    if status is not None and 200 <= status < 300:
        return "updated"
    if status is not None and 400 <= status < 500:
        return "refused"
    return "error"


def _headers(token: str | None, content: bool) -> dict[str, str]:
    headers = {"Accept": FHIR_JSON}
    if content:
        headers["Content-Type"] = FHIR_JSON
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _rejects_transactions(status: int, body: object) -> bool:
    if status in _NO_TRANSACTION_STATUSES:
        return True
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        codes = {i.get("code") for i in body.get("issue") or [] if isinstance(i, dict)}
        return "not-supported" in codes
    return False


# ---------------------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """The server one load talks to."""

    session: requests.Session
    base: str
    token: str | None
    timeout: float


def _load_by_put(target: _Target, name: str, bundle: dict[str, Any]) -> list[EntryResult]:
    """Fallback: PUT every entry on its own (entries must be PUTs with ``Type/id`` URLs)."""
    results: list[EntryResult] = []
    for index, entry in enumerate(bundle.get("entry") or []):
        label = _entry_label(entry)
        request = entry.get("request") or {}
        if str(request.get("method", "")).upper() != "PUT" or not isinstance(entry.get("resource"), dict):
            results.append(
                EntryResult(name, index, label, "refused", None, "not a PUT with a resource", "put")
            )
            continue
        try:
            response = target.session.put(
                f"{target.base}/{str(request['url']).lstrip('/')}",
                data=json.dumps(entry["resource"]),
                headers=_headers(target.token, content=True),
                timeout=target.timeout,
            )
        except requests.RequestException as exc:
            results.append(EntryResult(name, index, label, "error", None, type(exc).__name__, "put"))
            continue
        status = response.status_code
        diagnostics = "" if status < 300 else _diagnostics(_json(response)) or response.reason or ""
        results.append(EntryResult(name, index, label, _outcome_for(status), status, diagnostics, "put"))
    return results


def _load_one(target: _Target, name: str, bundle: dict[str, Any]) -> list[EntryResult]:
    entries = [e for e in bundle.get("entry") or [] if isinstance(e, dict)]
    labels = [_entry_label(e) for e in entries]
    try:
        response = target.session.post(
            target.base,
            data=json.dumps(bundle),
            headers=_headers(target.token, content=True),
            timeout=target.timeout,
        )
    except requests.RequestException as exc:
        reason = f"server unreachable ({type(exc).__name__})"
        return [EntryResult(name, i, label, "error", None, reason) for i, label in enumerate(labels)]
    body = _json(response)
    status = response.status_code
    if status >= 300:
        if _rejects_transactions(status, body):
            log.info(
                "bundle %s: server rejected the transaction (HTTP %d); loading entry by entry", name, status
            )
            return _load_by_put(target, name, bundle)
        diagnostics = _diagnostics(body) or response.reason or ""
        outcome = _outcome_for(status)
        note = f"transaction refused as a whole: {diagnostics}"
        return [EntryResult(name, i, label, outcome, status, note) for i, label in enumerate(labels)]
    if not isinstance(body, dict) or body.get("type") != "transaction-response":
        return [
            EntryResult(name, i, label, "error", status, "answer is not a transaction-response")
            for i, label in enumerate(labels)
        ]
    answers = [e for e in body.get("entry") or [] if isinstance(e, dict)]
    results: list[EntryResult] = []
    for index, label in enumerate(labels):
        if index >= len(answers):
            results.append(EntryResult(name, index, label, "error", None, "no response entry"))
            continue
        answer = answers[index].get("response") or {}
        code = _status_code(answer.get("status"))
        diagnostics = "" if code is not None and code < 300 else _diagnostics(answer.get("outcome"))
        results.append(EntryResult(name, index, label, _outcome_for(code), code, diagnostics))
    return results


def load_bundles(
    base_url: str,
    bundles: Sequence[tuple[str, dict[str, Any]]],
    token: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> LoadReport:
    """POST each ``(name, transaction Bundle)`` to ``base_url`` and report every entry's outcome."""
    base = base_url.rstrip("/")
    report = LoadReport()
    with requests.Session() as session:
        session.trust_env = False
        target = _Target(session, base, token, timeout)
        for name, bundle in bundles:
            results = _load_one(target, name, bundle)
            report.entries.extend(results)
            log.info(
                "bundle %s: %d entries, %d refused",
                name,
                len(results),
                sum(1 for r in results if r.outcome not in ("created", "updated")),
            )
    return report


def read_fixtures(directory: Path) -> list[tuple[str, dict[str, Any]]]:
    """Every ``<directory>/*/bundle.json``, sorted by folder name (``01-…``, ``02-…``), as (folder, Bundle)."""
    found: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(directory.glob("*/bundle.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
            raise ValueError(f"{path}: not a FHIR Bundle")
        found.append((path.parent.name, data))
    return found


# ---------------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``igg4-cds load-fixtures``."""
    parser = argparse.ArgumentParser(
        prog="igg4-cds load-fixtures", description="Load the FHIR fixture Bundles into a FHIR server."
    )
    parser.add_argument("--base-url", required=True, help="FHIR base URL, e.g. http://127.0.0.1:8090/fhir")
    parser.add_argument("--token", default=None, help="Bearer token for the FHIR server (never printed)")
    parser.add_argument(
        "--fixtures",
        type=Path,
        default=DEFAULT_FIXTURES_DIR,
        help="folder holding NN-slug/bundle.json (default: fhir_fixtures)",
    )
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per HTTP call")
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run ``load-fixtures``; return 0 when everything loaded, 1 when anything was refused, 2 on bad input."""
    stream = out or sys.stdout
    args = build_parser().parse_args(argv)
    try:
        bundles = read_fixtures(args.fixtures)
    except (OSError, ValueError) as exc:
        print(f"cannot read fixtures: {exc}", file=stream)
        return 2
    if not bundles:
        print(f"no fixtures found under {args.fixtures}/*/bundle.json", file=stream)
        return 2
    report = load_bundles(args.base_url, bundles, token=args.token, timeout=args.timeout)
    print(report.table(), file=stream)
    return 0 if report.ok else 1
