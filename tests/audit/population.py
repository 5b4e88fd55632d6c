"""A synthetic population for the audit's tests and benchmarks: the fixture patients among N others.

:func:`generate` returns every patient's resources; :func:`write_ndjson` writes them as a Bulk Data export
(one NDJSON file per resource type, optionally gzip); :func:`transaction_bundles` gives them as FHIR
transaction Bundles for loading a server. Deterministic for a given ``seed``.

The fixture patients (``fhir_fixtures/*/bundle.json``) keep their ids; their hook's draft orders become
placed orders (status ``active``, same ``authoredOn``), only the selected ones for order-select, so the
audit meets the same question the hook answered. The other patients are of two kinds:

- variants of a fixture: ids re-prefixed (``sNNNNNN-``), every date shifted by up to ~2.5 years back,
  and the serum IgG4 result dropped from one in three (so "IgG4 not measured" occurs);
- background patients (``background`` share, 70% by default): a Patient and a few routine labs, no
  presumption, like the bulk of a real export.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import random
import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from tests.paths import REPO

FIXTURES = REPO / "fhir_fixtures"
_DATE = re.compile(r'"(\d{4}-\d{2}-\d{2})')
_IGG4_CODE = '"2469-5"'


def fixture_patients() -> list[tuple[str, list[dict[str, Any]]]]:
    """(fixture name, resources) for every fixture: the bundle plus the hook's orders, as placed orders."""
    found = []
    for folder in sorted(p for p in FIXTURES.iterdir() if (p / "bundle.json").is_file()):
        bundle = json.loads((folder / "bundle.json").read_text())
        hook = json.loads((folder / "hook.json").read_text())
        resources = [e["resource"] for e in bundle.get("entry", [])]
        selections = set(hook.get("selections") or [])
        for entry in (hook.get("draftOrders") or {}).get("entry", []):
            order = dict(entry["resource"])
            if selections and f"{order['resourceType']}/{order['id']}" not in selections:
                continue
            order["status"] = "active"
            resources.append(order)
        found.append((folder.name, resources))
    return found


def fixture_ids() -> dict[str, str]:
    """Patient id -> fixture name."""
    return {
        next(r["id"] for r in resources if r["resourceType"] == "Patient"): name
        for name, resources in fixture_patients()
    }


def _shift_dates(text: str, days: int) -> str:
    def shift(match: re.Match[str]) -> str:
        try:
            moved = date.fromisoformat(match.group(1)) - timedelta(days=days)
        except ValueError:
            return match.group(0)
        return '"' + moved.isoformat()

    return _DATE.sub(shift, text)


def _variant(resources: list[dict[str, Any]], number: int, rng: random.Random) -> list[dict[str, Any]]:
    text = json.dumps(resources)
    prefix = re.search(r'"id": "(f\d\d-)', text)
    assert prefix is not None
    text = text.replace(prefix.group(1), f"s{number:06d}-")
    text = _shift_dates(text, rng.randint(0, 900))
    variant: list[dict[str, Any]] = json.loads(text)
    if rng.random() < 1 / 3:
        variant = [
            r for r in variant if not (r["resourceType"] == "Observation" and _IGG4_CODE in json.dumps(r))
        ]
    return variant


def _background(number: int, rng: random.Random) -> list[dict[str, Any]]:
    pid = f"b{number:06d}"
    patient = {
        "resourceType": "Patient",
        "id": pid,
        "gender": rng.choice(["male", "female"]),
        "birthDate": f"{rng.randint(1940, 2000)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
    }
    labs = []
    for k, (code, unit, low, high) in enumerate(
        [("6690-2", "10*9/L", 4.0, 10.0), ("777-3", "10*9/L", 150, 400), ("1742-6", "U/L", 7, 56)]
    ):
        day = date(2026, 11, 25) - timedelta(days=rng.randint(0, 1000))
        labs.append(
            {
                "resourceType": "Observation",
                "id": f"{pid}-obs-{k}",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                "subject": {"reference": f"Patient/{pid}"},
                "effectiveDateTime": day.isoformat(),
                "valueQuantity": {"value": round(rng.uniform(low, high), 1), "unit": unit},
                "referenceRange": [
                    {"low": {"value": low, "unit": unit}, "high": {"value": high, "unit": unit}}
                ],
            }
        )
    return [patient, *labs]


def generate(count: int, seed: int = 12, background: float = 0.7) -> Iterator[list[dict[str, Any]]]:
    """``count`` patients (at least the fixtures): the fixtures first, then variants and background ones."""
    rng = random.Random(seed)
    fixtures = fixture_patients()
    for _, resources in fixtures:
        yield resources
    for number in range(max(0, count - len(fixtures))):
        if rng.random() < background:
            yield _background(number, rng)
        else:
            yield _variant(fixtures[number % len(fixtures)][1], number, rng)


def write_ndjson(folder: Path, patients: Iterator[list[dict[str, Any]]], gzip_files: bool = False) -> int:
    """Write a Bulk Data-like export (``<Type>.ndjson[.gz]``) into ``folder``; returns the resource count."""
    folder.mkdir(parents=True, exist_ok=True)
    streams: dict[str, Any] = {}
    written = 0
    with contextlib.ExitStack() as stack:
        for resources in patients:
            for resource in resources:
                rtype = resource["resourceType"]
                if rtype not in streams:
                    name = folder / (f"{rtype}.ndjson.gz" if gzip_files else f"{rtype}.ndjson")
                    opener = gzip.open if gzip_files else open
                    streams[rtype] = stack.enter_context(opener(name, "wt"))
                streams[rtype].write(json.dumps(resource, separators=(",", ":")) + "\n")
                written += 1
    return written


def transaction_bundles(
    patients: Iterator[list[dict[str, Any]]], per_bundle: int = 50
) -> Iterator[dict[str, Any]]:
    """The patients as transaction Bundles of ``PUT Type/id`` entries, ``per_bundle`` patients each."""
    entries: list[dict[str, Any]] = []
    held = 0
    for resources in patients:
        entries += [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
            for r in resources
        ]
        held += 1
        if held == per_bundle:
            yield {"resourceType": "Bundle", "type": "transaction", "entry": entries}
            entries, held = [], 0
    if entries:
        yield {"resourceType": "Bundle", "type": "transaction", "entry": entries}
