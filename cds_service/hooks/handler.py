"""One hook call from parsed JSON to cards: request checks, data gathering, the core, rendering.

Framework-free, so the HTTP app, the command-line demo and batch jobs run exactly the same path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Protocol

from cds_service.core.assessment import (
    Assessment,
    CoreConfig,
    assess,
    needs_patient_data,
    read_evidence,
    read_orders,
)
from cds_service.core.resources import ReadCounts
from cds_service.errors import DataUnavailableError, FailedQuery
from cds_service.hooks.cards import render_cards
from cds_service.hooks.discovery import ServiceDefinition
from cds_service.hooks.queries import QUERIES_BY_KEY
from cds_service.hooks.request import (
    FhirTarget,
    HookRequest,
    parse_hook_request,
    search_errors,
    sort_prefetch,
)
from cds_service.logs import hook_instance_context
from cds_service.settings import Settings


class Fetcher(Protocol):
    """Fetches absent prefetch keys from the client's FHIR server (see :mod:`cds_service.fhir.client`)."""

    def fetch_missing(
        self, target: FhirTarget, keys: list[str], deadline: float, allowed_bases: tuple[str, ...] = ()
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """Return (key -> data) for what was fetched and (key -> reason) for what failed.

        ``allowed_bases`` adds FHIR bases the authenticated caller may name to the deployment's own list.
        """
        ...


@dataclass
class HookResult:
    """The cards of one call, the assessment they were rendered from, and what the log line reports.

    ``patient_id`` (the validated ``context.patientId``) and ``assessment`` are there to record the cards
    shown, where the patient is stored hashed; neither is ever logged. ``assessment`` is ``None`` when the
    call needed no patient data (no draft order acts on a presumed cholangiocarcinoma).
    """

    cards: list[dict[str, Any]]
    hook_instance: str
    patient_id: str | None = None
    assessment: Assessment | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    fetched: list[str] = field(default_factory=list)
    read: ReadCounts = field(default_factory=ReadCounts)
    """What reading the draft orders and the patient's resources repaired or skipped, set on every path."""

    @property
    def skipped_resources(self) -> int:
        """Resources that could not be read at all."""
        return self.read.total("skipped_resources")


def core_config(settings: Settings) -> CoreConfig:
    """The clinical parameters from the settings."""
    return CoreConfig(settings.lookback_years, Decimal(str(settings.default_igg4_uln_g_per_l)))


class _Clock:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.timings[phase] = round((now - self._last) * 1000, 3)
        self._last = now


def gather_data(
    request: HookRequest,
    settings: Settings,
    fetcher: Fetcher | None,
    deadline: float,
    allowed_bases: tuple[str, ...] = (),
) -> tuple[dict[str, Any], set[str], list[str]]:
    """Prefetch data plus whatever could be fetched for absent keys.

    Returns (data, unavailable optional keys, fetched keys). Raises :class:`DataUnavailableError` (412)
    when a key the decision depends on can be had neither way.
    """
    prefetch = sort_prefetch(request.prefetch)
    data = dict(prefetch.data)
    failures = dict(prefetch.failed)
    fetched: list[str] = []
    if prefetch.absent:
        target = request.fhir_target
        if fetcher is not None and target is not None:
            got, fetch_failures = fetcher.fetch_missing(target, prefetch.absent, deadline, allowed_bases)
            data.update(got)
            fetched = sorted(got)
            failures.update(fetch_failures)
        else:
            reason = "absent from prefetch and no FHIR server to query"
            if target is None and request.fhir_server:
                reason = "absent from prefetch and context.patientId missing"
            failures.update(dict.fromkeys(prefetch.absent, reason))
    partial: set[str] = set()
    for key, value in list(data.items()):
        error, has_data = search_errors(value)
        if error is not None and has_data:
            partial.add(key)  # use what came back; the card says the data is incomplete
        elif error is not None:
            failures[key] = error
            del data[key]
    required = [
        FailedQuery(k, QUERIES_BY_KEY[k].template, failures[k])
        for k in sorted(failures)
        if QUERIES_BY_KEY[k].required
    ]
    if required:
        raise DataUnavailableError(required)
    return data, set(failures) | partial, fetched


def handle_hook(
    service: ServiceDefinition,
    body: Any,
    settings: Settings,
    fetcher: Fetcher | None = None,
    *,
    allowed_bases: tuple[str, ...] = (),
    today: date | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> HookResult:
    """Answer one hook call to ``service`` (see :func:`cds_service.hooks.discovery.find_service`).

    Raises the :mod:`cds_service.errors` exceptions for the edge to render.
    """
    timer = _Clock()
    deadline = clock() + settings.hook_time_budget_s
    request = parse_hook_request(body, service.hook)
    with hook_instance_context(request.hook_instance):  # every log line of this call names it
        orders = read_orders(
            request.draft_orders,
            request.context.get("selections") if request.hook == "order-select" else None,
        )
        result = HookResult([], request.hook_instance, request.patient_id, read=orders.read)
        timer.lap("parse")
        if not needs_patient_data(request.hook, orders):
            result.timings_ms = timer.timings
            return result
        try:
            data, unavailable, result.fetched = gather_data(
                request, settings, fetcher, deadline, allowed_bases
            )
        except DataUnavailableError as exc:
            exc.hook_instance, exc.read_counts = request.hook_instance, result.read.as_log()
            raise
        timer.lap("fetch")
        evidence = read_evidence(
            data,
            unavailable,
            core_config(settings),
            today or datetime.now(UTC).date(),
            deadline=clock() + settings.evaluation_time_budget_s,
            clock=clock,
        )
        result.read = ReadCounts().merge(orders.read).merge(evidence.read)
        assessment = assess(request.hook, orders, evidence)
        timer.lap("evaluate")
        result.cards = render_cards(assessment, request.patient_id)
        timer.lap("render")
        result.assessment = assessment
        result.timings_ms = timer.timings
        return result
