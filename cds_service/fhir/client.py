"""Fallback FHIR fetching: run prefetch queries against the hook request's ``fhirServer`` within a time budget.

When a prefetch key the service needs is absent from a hook request, CDS Hooks 2.0 lets the service run the same
query against the CDS Client's FHIR server with the bearer token from ``fhirAuthorization``. A hook call has a
tight time budget (``Settings.hook_time_budget_s``), so every query here is bounded by one shared deadline:

* all queries run concurrently on a thread pool, through one pooled :class:`requests.Session`;
* each HTTP call gets connect and read timeouts computed from the time left before the deadline;
* the caller stops waiting at the deadline: a query still running then is abandoned (its future cancelled or left
  to finish on its own, bounded by its own timeouts) and reported as a timeout;
* connection errors are retried once on these idempotent GETs, read timeouts never (there is no time for it);
* bodies are streamed and counted after decompression: a query (all its pages) stops at
  ``Settings.max_fhir_response_bytes``, so an endless body or a gzip bomb costs at most that much memory;
* a response still arriving at the deadline is closed by its own thread (checked between reads), so no
  thread keeps reading after the caller gave up;
* each FHIR server (origin) has its own bounded thread pool: one slow server cannot take the threads another
  server's calls need.

Searchset Bundles are followed along ``link[relation=next]`` while the next URL stays on the same origin and under
the base path of ``fhirServer``, up to ``Settings.max_fhir_pages`` pages, and all pages' entries are merged into one
Bundle. Failures carry a short reason ("timeout after 2.5 s", "HTTP 401", "not JSON", ...) that never includes the
access token, a URL or any part of a response body. Logs name query keys, status codes and timings only.

This module has no web-framework imports; the web edge turns failures of required keys into a 412. Its parts:
:mod:`~cds_service.fhir.results` (what a query gives), :mod:`~cds_service.fhir.body` (the bounded body reader),
:mod:`~cds_service.fhir.bundles` (reading pages) and :mod:`~cds_service.fhir.log_redaction` (urllib3 log lines).
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import urljoin

import orjson
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from cds_service.fhir.body import ByteBudget, read_body
from cds_service.fhir.bundles import bundle_entries, bundle_links, entry_identity, next_link
from cds_service.fhir.log_redaction import redact_urllib3_logs
from cds_service.fhir.results import FetchFailure, FetchResult, FetchResultOrFailure, QueryError
from cds_service.fhir.urls import NormalisedUrl, normalise
from cds_service.settings import get_settings

log = logging.getLogger(__name__)

redact_urllib3_logs()

FHIR_JSON: Final = "application/fhir+json"
DEFAULT_WORKERS: Final = 8
CONNECT_RETRIES: Final = 1
MAX_SERVER_POOLS: Final = 64
_MIN_TIMEOUT_S: Final = 0.001


# ---------------------------------------------------------------------------------------------------------------
# The fetcher
# ---------------------------------------------------------------------------------------------------------------


def _retry_policy() -> Retry:
    """Retry connection failures once on GET; never retry reads, statuses or redirects (the budget is tight)."""
    return Retry(
        total=CONNECT_RETRIES,
        connect=CONNECT_RETRIES,
        # False, not 0: a read timeout is re-raised as itself (requests' ReadTimeout), where 0 would wrap it
        # in MaxRetryError, which requests reports as a ConnectionError ("unreachable").
        read=False,
        status=0,
        other=0,
        redirect=0,
        allowed_methods=frozenset({"GET"}),
        backoff_factor=0,
        raise_on_status=False,
        raise_on_redirect=False,
    )


def expected_type(query: str) -> tuple[str, bool]:
    """The resource type a relative query names and whether it is a search (True) or a read (False)."""
    path, _, _ = query.partition("?")
    segments = [s for s in path.split("/") if s]
    resource_type = segments[0] if segments else ""
    is_search = len(segments) == 1 or segments[-1] == "_search"
    return resource_type, is_search


class FhirFetcher:
    """Runs FHIR read/search queries concurrently against a CDS Client's FHIR server within a deadline.

    One instance is meant to live as long as the service: it owns one pooled :class:`requests.Session` and one
    thread pool. It is thread-safe; call :meth:`close` (or use it as a context manager) when done.
    """

    def __init__(
        self,
        max_pages: int | None = None,
        max_workers: int | None = None,
        session: requests.Session | None = None,
        max_response_bytes: int | None = None,
        *,
        loopback_as_one: bool = False,
    ) -> None:
        """Create the pooled session; ``max_pages``, ``max_workers`` (threads per FHIR server) and
        ``max_response_bytes`` (per query) default to the settings.

        ``loopback_as_one`` (development mode): ``localhost`` and ``127.0.0.1`` are the same FHIR server when
        following ``next`` links (:meth:`cds_service.fhir.urls.NormalisedUrl.contains`).
        """
        settings = get_settings()
        self.max_pages = max_pages if max_pages is not None else settings.max_fhir_pages
        self.max_response_bytes = (
            max_response_bytes if max_response_bytes is not None else settings.max_fhir_response_bytes
        )
        self.max_workers = max_workers if max_workers is not None else settings.fhir_workers_per_server
        self.loopback_as_one = loopback_as_one
        if self.max_pages < 1 or self.max_response_bytes < 1 or self.max_workers < 1:
            raise ValueError("max_pages, max_response_bytes and max_workers must be at least 1")
        self._session = session or requests.Session()
        adapter = HTTPAdapter(
            pool_connections=MAX_SERVER_POOLS, pool_maxsize=self.max_workers, max_retries=_retry_policy()
        )
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.trust_env = False  # no proxies or .netrc credentials picked up from the environment
        self._pools: OrderedDict[tuple[str, str, int], ThreadPoolExecutor] = OrderedDict()
        self._pools_lock = threading.Lock()
        self._closed = threading.Event()

    # -- lifecycle --------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the thread pool (without waiting for abandoned calls) and close the session."""
        if self._closed.is_set():
            return
        self._closed.set()
        with self._pools_lock:
            pools = list(self._pools.values())
            self._pools.clear()
        for pool in pools:
            pool.shutdown(wait=False, cancel_futures=True)
        self._session.close()

    def __enter__(self) -> Self:
        """Use the fetcher as a context manager."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the fetcher."""
        self.close()

    # -- public API -------------------------------------------------------------------------------------------

    def fetch(
        self,
        fhir_server: str,
        access_token: str | None,
        queries: Mapping[str, str],
        deadline: float,
    ) -> dict[str, FetchResultOrFailure]:
        """Run every query (key -> relative query such as ``Condition?patient=123``) before ``deadline``.

        ``deadline`` is a :func:`time.monotonic` instant. Returns one outcome per key, by the deadline at the
        latest (plus scheduling jitter): queries still running then are abandoned and reported as timeouts.
        ``Authorization: Bearer`` is sent only when ``access_token`` is given.
        """
        if self._closed.is_set():
            raise RuntimeError("FhirFetcher is closed")
        started = time.monotonic()
        budget = max(0.0, deadline - started)
        timeout_reason = f"timeout after {budget:.1f} s"
        base = fhir_server.rstrip("/")
        base_norm = normalise(base)
        headers = {"Accept": FHIR_JSON}
        if access_token:
            headers["Authorization"] = f"Bearer {access_token}"
        if base_norm is None:
            log.warning("fhir fetch refused: fhirServer is not a plain http(s) URL")
            return {key: FetchFailure("fhirServer is not a plain http(s) URL") for key in queries}
        call = _Call(base, base_norm, headers, deadline, timeout_reason)

        futures: dict[str, Future[FetchResultOrFailure]] = {}
        outcomes: dict[str, FetchResultOrFailure] = {}
        pool = self._pool_for(base_norm)
        for key, query in queries.items():
            if budget <= 0:
                outcomes[key] = FetchFailure(timeout_reason)
                continue
            # In the caller's context, so what the query logs carries the hook instance (cds_service.logs).
            context = contextvars.copy_context()
            futures[key] = pool.submit(context.run, self._run_query, call, key, query)

        if futures:
            wait(futures.values(), timeout=max(0.0, deadline - time.monotonic()))
        for key, future in futures.items():
            if future.done() and not future.cancelled():
                outcomes[key] = future.result()
            else:
                future.cancel()  # not started yet: never runs; running: abandoned, bounded by its own timeouts
                outcomes[key] = FetchFailure(timeout_reason, elapsed_s=time.monotonic() - started)
                log.warning("fhir fetch key=%s abandoned at deadline (%s)", key, timeout_reason)
        return {key: outcomes[key] for key in queries}

    # -- internals --------------------------------------------------------------------------------------------

    def _pool_for(self, server: NormalisedUrl) -> ThreadPoolExecutor:
        """The thread pool of one FHIR server (origin): servers never wait for each other's threads."""
        origin = (server.scheme, server.host, server.port)
        with self._pools_lock:
            pool = self._pools.get(origin)
            if pool is None:
                if len(self._pools) >= MAX_SERVER_POOLS:  # bounded: retire the least recently used
                    _, retired = self._pools.popitem(last=False)
                    retired.shutdown(wait=False)
                pool = ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="fhir-fetch")
                self._pools[origin] = pool
            self._pools.move_to_end(origin)
            return pool

    def _run_query(self, call: _Call, key: str, query: str) -> FetchResultOrFailure:
        """Run one query and its paging; never raises."""
        started = time.monotonic()
        try:
            result = self._query(call, key, query)
        except QueryError as failure:
            elapsed = time.monotonic() - started
            log.warning("fhir fetch key=%s failed: %s (%.0f ms)", key, failure.reason, elapsed * 1000)
            return FetchFailure(failure.reason, failure.status, elapsed)
        except Exception:  # a bug must not take the hook call down; no details: they may hold patient data
            elapsed = time.monotonic() - started
            log.error("fhir fetch key=%s failed unexpectedly (%.0f ms)", key, elapsed * 1000)
            return FetchFailure("unexpected error", None, elapsed)
        elapsed = time.monotonic() - started
        log.info(
            "fhir fetch key=%s ok: %d page(s)%s (%.0f ms)",
            key,
            result.pages,
            "" if result.complete else f", incomplete: {result.note}",
            elapsed * 1000,
        )
        return FetchResult(result.resource, result.pages, elapsed, result.complete, result.note)

    def _query(self, call: _Call, key: str, query: str) -> FetchResult:
        """Read a resource, or run a search and follow its ``next`` links within the server's base."""
        path = query.split("?", 1)[0]
        if "://" in path or path.startswith("//") or "@" in path:
            raise QueryError("query is not relative")
        resource_type, is_search = expected_type(query)
        url = f"{call.base}/{query.lstrip('/')}"
        not_fhir = "not a FHIR Bundle" if is_search else "not a FHIR resource"
        budget = ByteBudget(self.max_response_bytes)
        first = self._get_json(call, key, url, page=1, not_fhir=not_fhir, budget=budget)
        if not is_search:
            found = first.get("resourceType")
            if not isinstance(found, str):
                raise QueryError(not_fhir)
            if found != resource_type:
                raise QueryError(f"unexpected resourceType {found[:40]!r}")
            return FetchResult(first)
        if first.get("resourceType") != "Bundle":
            raise QueryError(not_fhir)
        entries, pages, complete, note = self._follow_pages(call, key, url, first, budget)
        merged = {k: v for k, v in first.items() if k not in ("entry", "link")}
        self_links = [link for link in bundle_links(first) if link.get("relation") == "self"]
        if self_links:
            merged["link"] = self_links
        if entries:
            merged["entry"] = entries
        return FetchResult(merged, pages, 0.0, complete, note)

    def _follow_pages(
        self, call: _Call, key: str, url: str, first: dict[str, Any], budget: ByteBudget
    ) -> tuple[list[dict[str, Any]], int, bool, str | None]:
        """Follow ``next`` links from ``first``: (entries of every page, pages read, complete, why not)."""
        not_fhir = "not a FHIR Bundle"
        entries = list(bundle_entries(first))
        seen = {i for e in entries if (i := entry_identity(e)) is not None}
        pages, complete, note = 1, True, None
        page = first
        read = {url.split("#", 1)[0]}
        while (next_url := next_link(page)) is not None:
            absolute = urljoin(url, next_url).split("#", 1)[0]
            target = normalise(absolute.split("?", 1)[0])
            if target is None or not call.base_norm.contains(target, loopback_as_one=self.loopback_as_one):
                complete, note = False, "next link outside the FHIR server base not followed"
            elif absolute in read:
                complete, note = False, "next link repeats a page already read"
            elif pages >= self.max_pages:
                complete, note = False, f"stopped after {self.max_pages} pages"
            if not complete:
                log.warning("fhir fetch key=%s: %s", key, note)
                break
            pages += 1
            read.add(absolute)
            try:
                page = self._get_json(call, key, absolute, page=pages, not_fhir=not_fhir, budget=budget)
            except QueryError as error:
                if error.reason != budget.reason:
                    raise
                complete, note = False, f"stopped at the {self.max_response_bytes}-byte limit"
                log.warning("fhir fetch key=%s: %s", key, note)
                break
            if page.get("resourceType") != "Bundle":
                raise QueryError(not_fhir)
            fresh = [e for e in bundle_entries(page) if (i := entry_identity(e)) is None or i not in seen]
            if bundle_entries(page) and not fresh:  # the same page under another URL (a loop back to page 1)
                complete, note = False, "next link repeats a page already read"
                log.warning("fhir fetch key=%s: %s", key, note)
                break
            seen.update(i for e in fresh if (i := entry_identity(e)) is not None)
            entries.extend(fresh)
            url = absolute
        return entries, pages, complete, note

    def _get_json(
        self, call: _Call, key: str, url: str, *, page: int, not_fhir: str, budget: ByteBudget
    ) -> dict[str, Any]:
        """GET ``url`` within the time and bytes left and return its JSON object, or raise :class:`QueryError`."""
        remaining = call.deadline - time.monotonic()
        if remaining <= 0:
            raise QueryError(call.timeout_reason)
        timeout = max(_MIN_TIMEOUT_S, remaining)
        # The connect timeout is shared with its one retry, so both attempts fit in the time left.
        connect_timeout = max(_MIN_TIMEOUT_S, remaining / (1 + CONNECT_RETRIES))
        started = time.monotonic()
        try:
            response = self._session.get(
                url,
                headers=call.headers,
                timeout=(connect_timeout, timeout),
                allow_redirects=False,
                stream=True,
            )
        except requests.exceptions.Timeout as exc:  # ConnectTimeout and ReadTimeout
            raise QueryError(call.timeout_reason) from exc
        except requests.exceptions.SSLError as exc:
            raise QueryError("TLS error") from exc
        except requests.exceptions.ConnectionError as exc:
            raise QueryError("unreachable") from exc
        except requests.exceptions.RequestException as exc:
            raise QueryError("request failed") from exc
        try:
            elapsed_ms = (time.monotonic() - started) * 1000
            log.debug(
                "fhir fetch key=%s page=%d HTTP %d (%.0f ms)", key, page, response.status_code, elapsed_ms
            )
            if response.status_code != 200:
                raise QueryError(f"HTTP {response.status_code}", response.status_code)
            raw = read_body(response, call.deadline, call.timeout_reason, budget)
        finally:
            response.close()  # also on a timeout or the byte limit: the connection is dropped, not drained
        try:
            body: object = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:  # not JSON, or bytes that are no UTF-8 text
            raise QueryError("not JSON") from exc
        if not isinstance(body, dict):
            raise QueryError(not_fhir)
        return body


@dataclass(frozen=True)
class _Call:
    """What every request of one :meth:`FhirFetcher.fetch` call shares."""

    base: str
    base_norm: NormalisedUrl
    headers: dict[str, str]
    deadline: float
    timeout_reason: str
