"""Synthetic FHIR R4 patients and their ready CDS Hooks requests (``fhir_fixtures/``).

Each fixture is a directory ``fhir_fixtures/NN-slug/`` holding:

- ``bundle.json``: a FHIR R4 transaction Bundle (every entry a ``PUT Type/id``), the patient's record;
- ``hook.json``: the hook call metadata (``hook``, ``hookInstance``, ``userId``, ``patientId``, optional
  ``encounterId``, ``draftOrders`` Bundle and ``selections``);
- ``request.json``: the CDS Hooks 2.0 request, generated from the two files above (never edited by hand);
- ``expected.json``: the hand-computed expected outcome (title, description, hook, expected card).

``python -m cds_service.fixtures`` regenerates every ``request.json``; ``--check`` only reports drift.
The prefetch is built by running each template of :data:`cds_service.queries.QUERIES` against the bundle,
so the request holds exactly what a FHIR server loaded with the bundle would return.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl

from cds_service.queries import PATIENT_TOKEN, QUERIES

FIXTURES_ENV: Final = "IGG4_CDS_FIXTURES_DIR"
"""Environment variable that overrides :data:`FIXTURES_DIR`."""

FIXTURES_DIR: Path = Path(
    os.environ.get(FIXTURES_ENV, str(Path(__file__).resolve().parent.parent / "fhir_fixtures"))
)
"""The repository's ``fhir_fixtures`` directory (overridable with ``IGG4_CDS_FIXTURES_DIR``)."""

BUNDLE_FILE: Final = "bundle.json"
HOOK_FILE: Final = "hook.json"
REQUEST_FILE: Final = "request.json"
EXPECTED_FILE: Final = "expected.json"

DEFAULT_BASE_URL: Final = "http://example.org/fhir"
"""Base used for the ``fullUrl`` of prefetched resources (the fixtures have no real server)."""

_DATE_ELEMENTS: Final = ("effectiveDateTime", "effectiveInstant", "issued", "authoredOn", "recordedDate")

JsonObject = dict[str, Any]


@dataclass
class Fixture:
    """One synthetic patient: its record, its ready request and the hand-computed expectation."""

    name: str
    path: Path
    bundle: JsonObject
    request: JsonObject
    expected: JsonObject

    @property
    def hook_metadata(self) -> JsonObject:
        """The contents of ``hook.json`` (empty when the fixture has none)."""
        hook_file = self.path / HOOK_FILE
        return _read_json(hook_file) if hook_file.is_file() else {}


def _read_json(path: Path) -> JsonObject:
    with path.open(encoding="utf-8") as handle:
        data = json.load(handle)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


def dump_json(data: Any) -> str:
    """The canonical text of a fixture file: 2-space indent, UTF-8, trailing newline."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _root(root: Path | str | None) -> Path:
    return Path(root) if root is not None else FIXTURES_DIR


def fixture_dirs(root: Path | str | None = None) -> list[Path]:
    """Every fixture directory under ``root`` (one holding a ``bundle.json``), sorted by name."""
    base = _root(root)
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if p.is_dir() and (p / BUNDLE_FILE).is_file())


def load_fixture(name_or_path: str | Path, root: Path | str | None = None) -> Fixture:
    """Load one fixture by directory name (``"01-published-case"``), by its ``NN`` prefix, or by path."""
    candidate = Path(name_or_path)
    if not candidate.is_dir():
        base = _root(root)
        candidate = base / str(name_or_path)
        if not candidate.is_dir():
            matches = [p for p in fixture_dirs(base) if p.name.split("-", 1)[0] == str(name_or_path)]
            if len(matches) != 1:
                raise FileNotFoundError(f"no fixture named {name_or_path!r} under {base}")
            candidate = matches[0]
    request_file = candidate / REQUEST_FILE
    expected_file = candidate / EXPECTED_FILE
    return Fixture(
        name=candidate.name,
        path=candidate,
        bundle=_read_json(candidate / BUNDLE_FILE),
        request=_read_json(request_file) if request_file.is_file() else {},
        expected=_read_json(expected_file) if expected_file.is_file() else {},
    )


def list_fixtures(root: Path | str | None = None) -> list[Fixture]:
    """Every fixture under ``root`` (default :data:`FIXTURES_DIR`), sorted by directory name."""
    return [load_fixture(path) for path in fixture_dirs(root)]


def bundle_resources(bundle: JsonObject) -> list[JsonObject]:
    """The resources of a Bundle's entries, in order (entries without a resource are skipped)."""
    resources: list[JsonObject] = []
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict):
            resources.append(resource)
    return resources


def _references_patient(resource: JsonObject, patient_id: str) -> bool:
    wanted = f"Patient/{patient_id}"
    for element in ("subject", "patient"):
        ref = resource.get(element)
        if isinstance(ref, dict) and ref.get("reference") == wanted:
            return True
    return False


def _tokens(resource: JsonObject, element: str) -> set[tuple[str, str]]:
    """``(system, code)`` of every coding in a CodeableConcept (or list of them) element."""
    value = resource.get(element)
    concepts: Iterable[Any] = value if isinstance(value, list) else [value]
    found: set[tuple[str, str]] = set()
    for concept in concepts:
        if not isinstance(concept, dict):
            continue
        for coding in concept.get("coding") or []:
            if isinstance(coding, dict):
                found.add((str(coding.get("system", "")), str(coding.get("code", ""))))
    return found


def _matches_token_param(resource: JsonObject, element: str, value: str) -> bool:
    wanted: set[tuple[str, str]] = set()
    for token in value.split(","):
        system, _, code = token.rpartition("|")
        wanted.add((system, code))
    present = _tokens(resource, element)
    return any(
        (system, code) in present or (not system and any(c == code for _, c in present))
        for system, code in wanted
    )


def _sort_date(resource: JsonObject) -> str:
    for element in _DATE_ELEMENTS:
        value = resource.get(element)
        if isinstance(value, str):
            return value
    period = resource.get("effectivePeriod")
    if isinstance(period, dict) and isinstance(period.get("start"), str):
        return str(period["start"])
    return ""


def _search(resources: Sequence[JsonObject], template: str, patient_id: str) -> list[JsonObject]:
    """Emulate a FHIR search: resource type, ``patient``, ``code``/``category`` tokens, ``_sort=-date``."""
    query = template.replace(PATIENT_TOKEN, patient_id)
    resource_type, _, query_string = query.partition("?")
    hits = [r for r in resources if r.get("resourceType") == resource_type]
    sort_descending: bool | None = None
    for name, value in parse_qsl(query_string, keep_blank_values=True):
        if name in ("patient", "subject"):
            hits = [r for r in hits if _references_patient(r, value.removeprefix("Patient/"))]
        elif name in ("code", "category"):
            hits = [r for r in hits if _matches_token_param(r, name, value)]
        elif name == "_sort" and value.lstrip("-") == "date":
            sort_descending = value.startswith("-")
    if sort_descending is not None:
        hits.sort(key=_sort_date, reverse=sort_descending)
    return hits


def searchset(resources: Sequence[JsonObject], base_url: str = DEFAULT_BASE_URL) -> JsonObject:
    """A searchset Bundle of ``resources`` with ``total``, ``fullUrl`` and ``search.mode`` match."""
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [
            {
                "fullUrl": f"{base_url}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ],
    }


def prefetch_from_bundle(
    bundle: JsonObject, patient_id: str, base_url: str = DEFAULT_BASE_URL
) -> dict[str, Any]:
    """The prefetch a FHIR server loaded with ``bundle`` would return for every key of ``QUERIES``.

    A read template (``Patient/{{context.patientId}}``) gives the bare resource, or ``None`` when absent;
    a search template gives a searchset Bundle (``total`` 0 and no entries when nothing matches).
    """
    resources = bundle_resources(bundle)
    prefetch: dict[str, Any] = {}
    for query in QUERIES:
        rendered = query.render(patient_id)
        if "?" not in rendered and "/" in rendered:
            resource_type, _, resource_id = rendered.partition("/")
            prefetch[query.key] = next(
                (
                    r
                    for r in resources
                    if r.get("resourceType") == resource_type and r.get("id") == resource_id
                ),
                None,
            )
        else:
            prefetch[query.key] = searchset(_search(resources, query.template, patient_id), base_url)
    return prefetch


def build_request(  # noqa: PLR0917 - the brief's positional order: bundle, hook, ids, draft orders
    bundle: JsonObject,
    hook: str,
    hook_instance: str,
    patient_id: str,
    user_id: str,
    draft_orders: JsonObject | None = None,
    *,
    selections: Sequence[str] | None = None,
    encounter_id: str | None = None,
    fhir_server: str | None = None,
) -> JsonObject:
    """A CDS Hooks 2.0 request for ``hook`` with the full prefetch built from ``bundle``.

    ``draftOrders`` and ``selections`` are put in the context only when given (``order-sign`` needs the
    first, ``order-select`` both, ``patient-view`` neither). ``fhirServer`` is left out by default so the
    request can be evaluated offline.
    """
    context: JsonObject = {"userId": user_id, "patientId": patient_id}
    if encounter_id is not None:
        context["encounterId"] = encounter_id
    if selections is not None:
        context["selections"] = list(selections)
    if draft_orders is not None:
        context["draftOrders"] = draft_orders
    request: JsonObject = {"hook": hook, "hookInstance": hook_instance}
    if fhir_server is not None:
        request["fhirServer"] = fhir_server
    request["context"] = context
    request["prefetch"] = prefetch_from_bundle(bundle, patient_id)
    return request


def request_for_dir(path: Path) -> JsonObject:
    """The request a fixture directory's ``bundle.json`` and ``hook.json`` produce."""
    bundle = _read_json(path / BUNDLE_FILE)
    meta = _read_json(path / HOOK_FILE)
    return build_request(
        bundle,
        hook=str(meta["hook"]),
        hook_instance=str(meta["hookInstance"]),
        patient_id=str(meta["patientId"]),
        user_id=str(meta["userId"]),
        draft_orders=meta.get("draftOrders"),
        selections=meta.get("selections"),
        encounter_id=meta.get("encounterId"),
    )


def regenerate(root: Path | str | None = None, check: bool = False) -> list[Path]:
    """Rewrite every fixture's ``request.json``; return the ones that changed (or would, with ``check``)."""
    changed: list[Path] = []
    for path in fixture_dirs(root):
        text = dump_json(request_for_dir(path))
        target = path / REQUEST_FILE
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            changed.append(target)
            if not check:
                target.write_text(text, encoding="utf-8")
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: regenerate the request files (``--check``: exit 1 when any has drifted)."""
    parser = argparse.ArgumentParser(description="Regenerate fhir_fixtures/*/request.json from the bundles.")
    parser.add_argument("--root", type=Path, default=None, help="fixtures directory (default: repo's)")
    parser.add_argument("--check", action="store_true", help="only report drift; write nothing")
    args = parser.parse_args(argv)
    changed = regenerate(args.root, check=args.check)
    for target in changed:
        sys.stdout.write(f"{'drifted' if args.check else 'wrote'}: {target}\n")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    raise SystemExit(main())
