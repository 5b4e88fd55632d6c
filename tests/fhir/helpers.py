"""Small helpers shared by the FHIR client tests: deadlines and narrowing a fetch's result."""

from __future__ import annotations

import time

from cds_service.fhir.results import FetchFailure, FetchResult, FetchResultOrFailure


def deadline_in(seconds: float) -> float:
    """A monotonic deadline ``seconds`` from now, as the fetcher takes it."""
    return time.monotonic() + seconds


def as_result(outcome: FetchResultOrFailure) -> FetchResult:
    """The outcome, asserted to be a successful fetch."""
    assert isinstance(outcome, FetchResult), outcome
    return outcome


def as_failure(outcome: FetchResultOrFailure) -> FetchFailure:
    """The outcome, asserted to be a failure."""
    assert isinstance(outcome, FetchFailure), outcome
    return outcome
