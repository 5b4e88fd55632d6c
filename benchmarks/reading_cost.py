"""In-process cost of one cold hook call, and of reading its resources: whole-resource validation vs projection.

No HTTP, no server: this isolates what the clinical core's reading costs (the wrk benchmark measures the
service over HTTP). Every call is a first-seen patient: the published case
(``fhir_fixtures/01-published-case/request.json``) with a unique token in every resource id, reference and
``context.patientId``, and the report reader's findings cache cleared before each call, so no cache answers.

Measured in one run, interleaved call by call (CPU time of this thread, so other processes on a shared
machine do not count), median per call:

* ``bare``: ``orjson.loads`` of the body, the floor a bare endpoint pays;
* ``validate``: what reading cost before issue 9: every resource the core reads validated whole with
  fhir.resources' R4B models (``Model.model_validate``; observations pre-filtered on their LOINC codes, as
  the service did), cold;
* ``project``: what it costs now: :func:`cds_service.core.resources.read_resources`, element by element;
* ``call``: the whole in-process hook call now (:func:`cds_service.hooks.handler.handle_hook`: request
  checks, reading, report narrative, criteria, card rendering).

It prints the medians and the ratios validate/project, call/bare, and the call as it was before
(``call - project + validate``: the same call with the old reading) against the call now.

Run from the checkout::

    .venv/bin/python benchmarks/reading_cost.py            # 300 calls, about 15 s
    .venv/bin/python benchmarks/reading_cost.py --calls 50 # quick
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import orjson
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.medicationstatement import MedicationStatement
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.servicerequest import ServiceRequest

from cds_service.core import narrative
from cds_service.core.labs import wanted_observation
from cds_service.core.resources import ReadCounts, iter_raw_resources, read_resources
from cds_service.hooks.discovery import find_service
from cds_service.hooks.handler import handle_hook
from cds_service.settings import Settings

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "fhir_fixtures" / "01-published-case" / "request.json"
SERVICE = find_service("igg4rd-order-sign")
TODAY = date(2026, 11, 25)

# (prefetch key or None for the draft orders, resource type, R4B model, raw pre-filter)
READS: list[tuple[str | None, str, Any, Callable[[Any], bool] | None]] = [
    (None, "ServiceRequest", ServiceRequest, None),
    (None, "MedicationRequest", MedicationRequest, None),
    ("observations", "Observation", Observation, wanted_observation),
    ("conditions", "Condition", Condition, None),
    ("reports", "DiagnosticReport", DiagnosticReport, None),
    ("medicationRequests", "MedicationRequest", MedicationRequest, None),
    ("medicationStatements", "MedicationStatement", MedicationStatement, None),
]


def cold_bodies(template: str, n: int) -> list[bytes]:
    """``n`` copies of the request, each with every ``f01-`` id (and reference to it) made unique."""
    return [
        template.replace('"f01-', f'"f01-c{i}-').replace("/f01-", f"/f01-c{i}-").encode() for i in range(n)
    ]


def _sources(body: dict[str, Any]) -> list[tuple[Any, str, Any, Callable[[Any], bool] | None]]:
    prefetch = body.get("prefetch", {})
    return [
        (body["context"]["draftOrders"] if key is None else prefetch.get(key), rtype, model, keep)
        for key, rtype, model, keep in READS
    ]


def validate(body: dict[str, Any]) -> int:
    """Reading before issue 9: whole-resource validation with fhir.resources R4B."""
    n = 0
    for data, rtype, model, keep in _sources(body):
        for raw in iter_raw_resources(data):
            if raw.get("resourceType") == rtype and (keep is None or keep(raw)):
                model.model_validate(raw)
                n += 1
    return n


def project(body: dict[str, Any]) -> int:
    """Reading now: element-level projection."""
    counts = ReadCounts()
    return sum(len(read_resources(data, rtype, counts, keep)) for data, rtype, _, keep in _sources(body))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    settings = Settings(dev_mode=True)
    bodies = cold_bodies(FIXTURE.read_text(), args.calls + 5)
    times: dict[str, list[float]] = {"bare": [], "validate": [], "project": [], "call": []}
    # Warm up imports and compiled patterns (not the data: every measured body is new).
    for raw in bodies[-5:]:
        body = orjson.loads(raw)
        validate(body), project(body)
        handle_hook(SERVICE, body, settings, today=TODAY)
    resources = 0
    for raw in bodies[: args.calls]:
        narrative.clear_cache()
        started = time.thread_time()
        body = orjson.loads(raw)
        times["bare"].append(time.thread_time() - started)
        for name, step in (("validate", validate), ("project", project)):
            fresh = orjson.loads(raw)
            started = time.thread_time()
            resources = step(fresh)
            times[name].append(time.thread_time() - started)
        narrative.clear_cache()
        fresh = orjson.loads(raw)
        started = time.thread_time()
        outcome = handle_hook(SERVICE, fresh, settings, today=TODAY)
        times["call"].append(time.thread_time() - started)
        assert [c["indicator"] for c in outcome.cards] == ["warning"], outcome.cards
    med = {name: statistics.median(values) * 1000 for name, values in times.items()}
    before = med["call"] - med["project"] + med["validate"]
    print(f"published case, {resources} resources read per call, {args.calls} cold calls, CPU ms (median)")
    for name, value in med.items():
        print(f"  {name:<9}{value:8.3f} ms")
    print(f"  reading: validate/project      x{med['validate'] / med['project']:.1f}")
    print(f"  call before (old reading)       {before:8.3f} ms  = x{before / med['bare']:.0f} bare")
    print(f"  call now                        {med['call']:8.3f} ms  = x{med['call'] / med['bare']:.0f} bare")
    print(f"  call before/now                 x{before / med['call']:.2f}")


if __name__ == "__main__":
    main()
