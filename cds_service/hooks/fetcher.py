"""The service's fetcher for absent prefetch keys: the hook's queries, run through the FHIR client."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from cds_service.fhir.client import FhirFetcher, expected_type
from cds_service.fhir.results import FetchResult
from cds_service.fhir.urls import is_allowed_base
from cds_service.hooks.queries import QUERIES_BY_KEY
from cds_service.settings import Settings

if TYPE_CHECKING:
    from cds_service.hooks.request import FhirTarget

log = logging.getLogger(__name__)


class PrefetchFetcher:
    """The service's fetcher for absent prefetch keys (``cds_service.hooks.handler.Fetcher``), over a :class:`FhirFetcher`.

    It refuses ``fhirServer`` URLs outside ``Settings.allowed_fhir_bases`` (plus loopback in ``dev_mode``), renders
    each absent key's query for ``context.patientId``, and fetches them all within the hook's deadline. A read
    answered 404 (the ``patient`` key) counts as data ``None``, as a CDS Client would prefetch it. Searchsets cut
    short by the page limit are used as fetched (newest first, given ``_sort=-date``) and logged.
    """

    def __init__(self, settings: Settings, fetcher: FhirFetcher | None = None) -> None:
        """Use ``fetcher`` or make one sized by the settings (pages, threads per server, bytes per query)."""
        self.settings = settings
        self.fetcher = fetcher or FhirFetcher(
            max_pages=settings.max_fhir_pages,
            max_workers=settings.fhir_workers_per_server,
            max_response_bytes=settings.max_fhir_response_bytes,
            loopback_as_one=settings.dev_mode,
        )

    def close(self) -> None:
        """Close the underlying :class:`FhirFetcher`."""
        self.fetcher.close()

    def fetch_missing(
        self, target: FhirTarget, keys: list[str], deadline: float, allowed_bases: tuple[str, ...] = ()
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """Return (key -> data) for what was fetched and (key -> reason) for what failed.

        ``allowed_bases``: FHIR bases the authenticated caller may name, on top of the deployment's list.
        """
        server = target.server
        unknown = [k for k in keys if k not in QUERIES_BY_KEY]
        failures = dict.fromkeys(unknown, "unknown prefetch key")
        wanted = [k for k in keys if k in QUERIES_BY_KEY]
        if not wanted:
            return {}, failures
        allowed = [*self.settings.allowed_fhir_bases, *allowed_bases]
        if not is_allowed_base(server, allowed, self.settings.dev_mode):
            log.warning(
                "fhir fetch refused: fhirServer not in allowed_fhir_bases (keys=%s)", ",".join(wanted)
            )
            failures.update(dict.fromkeys(wanted, "fhirServer not allowed"))
            return {}, failures
        queries = {k: QUERIES_BY_KEY[k].render(target.patient_id) for k in wanted}
        outcomes = self.fetcher.fetch(server, target.access_token, queries, deadline)
        data: dict[str, Any] = {}
        for key, outcome in outcomes.items():
            if isinstance(outcome, FetchResult):
                data[key] = outcome.resource
            elif outcome.status == 404 and not expected_type(queries[key])[1]:
                data[key] = None
            else:
                failures[key] = outcome.reason
        return data, failures
