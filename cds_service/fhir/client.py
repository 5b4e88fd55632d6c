"""Fallback FHIR fetching: run prefetch queries against the hook request's ``fhirServer`` within a time budget.

When a prefetch key the service needs is absent from a hook request, CDS Hooks 2.0 lets the service run the same
query against the CDS Client's FHIR server with the bearer token from ``fhirAuthorization``. A hook call has a
tight time budget (``Settings.hook_time_budget_s``), so every query here is bounded by one shared deadline:

* all queries run concurrently on a thread pool, through one pooled :class:`requests.Session`;
* each HTTP call gets connect and read timeouts computed from the time left before the deadline;
* the caller stops waiting at the deadline: a query still running then is abandoned (its future cancelled or left
  to finish on its own, bounded by its own timeouts) and reported as a timeout;
* connection errors are retried once on these idempotent GETs, read timeouts never (there is no time for it).

Searchset Bundles are followed along ``link[relation=next]`` while the next URL stays on the same origin and under
the base path of ``fhirServer``, up to ``Settings.max_fhir_pages`` pages, and all pages' entries are merged into one
Bundle. Failures carry a short reason ("timeout after 2.5 s", "HTTP 401", "not JSON", ...) that never includes the
access token, a URL or any part of a response body. Logs name query keys, status codes and timings only.

This module has no web-framework imports; the web edge turns failures of required keys into a 412.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self
from urllib.parse import unquote, urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from cds_service.hooks.queries import QUERIES_BY_KEY
from cds_service.settings import Settings, get_settings

if TYPE_CHECKING:
    from cds_service.hooks.request import HookRequest

log = logging.getLogger(__name__)

FHIR_JSON: Final = "application/fhir+json"
DEFAULT_WORKERS: Final = 8
CONNECT_RETRIES: Final = 1
_MIN_TIMEOUT_S: Final = 0.001
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


@dataclass(frozen=True)
class FetchResult:
    """A query that answered: the resource read, or the searchset Bundle with every followed page merged.

    ``complete`` is False when paging stopped early (page limit reached, or a ``next`` link that left the
    server's base was not followed); ``note`` then says why.
    """

    resource: dict[str, Any]
    pages: int = 1
    elapsed_s: float = 0.0
    complete: bool = True
    note: str | None = None

    @property
    def ok(self) -> bool:
        """Always True: this outcome holds data."""
        return True


@dataclass(frozen=True)
class FetchFailure:
    """A query that gave no usable data; ``reason`` is safe to log and to show (no token, URL or body)."""

    reason: str
    status: int | None = None
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        """Always False: this outcome holds no data."""
        return False


FetchOutcome = FetchResult | FetchFailure


class _QueryError(Exception):
    """Internal: one query failed with a safe reason."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


# ---------------------------------------------------------------------------------------------------------------
# URL normalisation and the allow-list
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Base:
    """A normalised http(s) URL: lower-case scheme and host, explicit port, path without trailing slash."""

    scheme: str
    host: str
    port: int
    path: str

    def contains(self, other: _Base) -> bool:
        """Whether ``other`` is this URL or lies under it (same origin, path equal or below on a ``/`` boundary)."""
        if (self.scheme, self.host, self.port) != (other.scheme, other.host, other.port):
            return False
        return self.path in ("", other.path) or other.path.startswith(self.path + "/")


def _normalise(url: str) -> _Base | None:
    """Parse ``url`` into a :class:`_Base`, or None when it is not a plain absolute http(s) URL.

    Refused: other schemes, user-info (``https://a@b``), missing host, bad ports, query or fragment parts, and
    paths with ``.``/``..`` segments or encoded slashes (they could step outside an allowed prefix).
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return None
    if parts.query or parts.fragment:
        return None
    raw_path = parts.path
    if "%2f" in raw_path.lower() or "%5c" in raw_path.lower() or "\\" in raw_path:
        return None
    segments = [s for s in unquote(raw_path).split("/") if s]
    if any(s in (".", "..") for s in segments):
        return None
    path = "/" + "/".join(segments) if segments else ""
    host = parts.hostname.lower().rstrip(".")
    return _Base(scheme, host, port if port is not None else _DEFAULT_PORTS[scheme], path)


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_allowed_base(fhir_server: str, allowed: list[str], dev_mode: bool) -> bool:
    """Whether the service may fetch from ``fhir_server``.

    Allowed when the normalised URL equals an entry of ``allowed`` or lies under it on a path boundary, on the
    same scheme, host and port: ``https://ehr.example/fhir`` allows ``https://ehr.example/fhir/r4`` but not
    ``https://ehr.example/fhirx``, ``https://ehr.example.evil.com/fhir`` or ``http://ehr.example/fhir``. In
    development mode loopback hosts (127.0.0.0/8, ::1, localhost) are allowed as well. Malformed URLs and
    allow-list entries never match. Plain ``http`` is refused for any host but loopback, even when an
    ``http`` entry is listed: patient data and access tokens never cross a network in clear (CDS Hooks: TLS).
    """
    target = _normalise(fhir_server)
    if target is None:
        return False
    if dev_mode and _is_loopback(target.host):
        return True
    if target.scheme != "https" and not _is_loopback(target.host):
        return False
    for entry in allowed:
        base = _normalise(entry)
        if base is not None and base.contains(target):
            return True
    return False


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


def _expected_type(query: str) -> tuple[str, bool]:
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
        max_workers: int = DEFAULT_WORKERS,
        session: requests.Session | None = None,
    ) -> None:
        """Create the pooled session and thread pool; ``max_pages`` defaults to ``Settings.max_fhir_pages``."""
        self.max_pages = max_pages if max_pages is not None else get_settings().max_fhir_pages
        if self.max_pages < 1:
            raise ValueError("max_pages must be at least 1")
        self._session = session or requests.Session()
        adapter = HTTPAdapter(
            pool_connections=max_workers, pool_maxsize=max_workers * 2, max_retries=_retry_policy()
        )
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.trust_env = False  # no proxies or .netrc credentials picked up from the environment
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="fhir-fetch")
        self._closed = threading.Event()

    # -- lifecycle --------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the thread pool (without waiting for abandoned calls) and close the session."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
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
    ) -> dict[str, FetchOutcome]:
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
        base_norm = _normalise(base)
        headers = {"Accept": FHIR_JSON}
        if access_token:
            headers["Authorization"] = f"Bearer {access_token}"
        if base_norm is None:
            log.warning("fhir fetch refused: fhirServer is not a plain http(s) URL")
            return {key: FetchFailure("fhirServer is not a plain http(s) URL") for key in queries}
        call = _Call(base, base_norm, headers, deadline, timeout_reason)

        futures: dict[str, Future[FetchOutcome]] = {}
        outcomes: dict[str, FetchOutcome] = {}
        for key, query in queries.items():
            if budget <= 0:
                outcomes[key] = FetchFailure(timeout_reason)
                continue
            futures[key] = self._pool.submit(self._run_query, call, key, query)

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

    def _run_query(self, call: _Call, key: str, query: str) -> FetchOutcome:
        """Run one query and its paging; never raises."""
        started = time.monotonic()
        try:
            result = self._query(call, key, query)
        except _QueryError as failure:
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
            raise _QueryError("query is not relative")
        resource_type, is_search = _expected_type(query)
        url = f"{call.base}/{query.lstrip('/')}"
        not_fhir = "not a FHIR Bundle" if is_search else "not a FHIR resource"
        first = self._get_json(call, key, url, 1, not_fhir)
        if not is_search:
            found = first.get("resourceType")
            if not isinstance(found, str):
                raise _QueryError(not_fhir)
            if found != resource_type:
                raise _QueryError(f"unexpected resourceType {found[:40]!r}")
            return FetchResult(first)
        if first.get("resourceType") != "Bundle":
            raise _QueryError(not_fhir)
        entries = list(_entries(first))
        pages, complete, note = 1, True, None
        page = first
        while (next_url := _next_link(page)) is not None:
            absolute = urljoin(url, next_url)
            target = _normalise(absolute.split("#", 1)[0].split("?", 1)[0])
            if target is None or not call.base_norm.contains(target):
                complete, note = False, "next link outside the FHIR server base not followed"
                log.warning("fhir fetch key=%s: %s", key, note)
                break
            if pages >= self.max_pages:
                complete, note = False, f"stopped after {self.max_pages} pages"
                log.warning("fhir fetch key=%s: %s", key, note)
                break
            pages += 1
            page = self._get_json(call, key, absolute, pages, not_fhir)
            if page.get("resourceType") != "Bundle":
                raise _QueryError(not_fhir)
            entries.extend(_entries(page))
            url = absolute
        merged = {k: v for k, v in first.items() if k not in ("entry", "link")}
        self_links = [link for link in _links(first) if link.get("relation") == "self"]
        if self_links:
            merged["link"] = self_links
        if entries:
            merged["entry"] = entries
        return FetchResult(merged, pages, 0.0, complete, note)

    def _get_json(self, call: _Call, key: str, url: str, page: int, not_fhir: str) -> dict[str, Any]:
        """GET ``url`` within the time left and return its JSON object, or raise :class:`_QueryError`."""
        remaining = call.deadline - time.monotonic()
        if remaining <= 0:
            raise _QueryError(call.timeout_reason)
        timeout = max(_MIN_TIMEOUT_S, remaining)
        started = time.monotonic()
        try:
            response = self._session.get(
                url, headers=call.headers, timeout=(timeout, timeout), allow_redirects=False
            )
        except requests.exceptions.Timeout as exc:  # ConnectTimeout and ReadTimeout
            raise _QueryError(call.timeout_reason) from exc
        except requests.exceptions.SSLError as exc:
            raise _QueryError("TLS error") from exc
        except requests.exceptions.ConnectionError as exc:
            raise _QueryError("unreachable") from exc
        except requests.exceptions.RequestException as exc:
            raise _QueryError("request failed") from exc
        try:
            elapsed_ms = (time.monotonic() - started) * 1000
            log.debug(
                "fhir fetch key=%s page=%d HTTP %d (%.0f ms)", key, page, response.status_code, elapsed_ms
            )
            if response.status_code != 200:
                raise _QueryError(f"HTTP {response.status_code}", response.status_code)
            try:
                body: object = response.json()
            except ValueError as exc:  # JSONDecodeError, or bytes that are no text
                raise _QueryError("not JSON") from exc
        finally:
            response.close()
        if not isinstance(body, dict):
            raise _QueryError(not_fhir)
        return body


@dataclass(frozen=True)
class _Call:
    """What every request of one :meth:`FhirFetcher.fetch` call shares."""

    base: str
    base_norm: _Base
    headers: dict[str, str]
    deadline: float
    timeout_reason: str


class PrefetchFetcher:
    """The service's fetcher for absent prefetch keys (``cds_service.hooks.handler.Fetcher``), over a :class:`FhirFetcher`.

    It refuses ``fhirServer`` URLs outside ``Settings.allowed_fhir_bases`` (plus loopback in ``dev_mode``), renders
    each absent key's query for ``context.patientId``, and fetches them all within the hook's deadline. A read
    answered 404 (the ``patient`` key) counts as data ``None``, as a CDS Client would prefetch it. Searchsets cut
    short by the page limit are used as fetched (newest first, given ``_sort=-date``) and logged.
    """

    def __init__(self, settings: Settings, fetcher: FhirFetcher | None = None) -> None:
        """Use ``fetcher`` or make one sized by ``settings.max_fhir_pages``."""
        self.settings = settings
        self.fetcher = fetcher or FhirFetcher(max_pages=settings.max_fhir_pages)

    def close(self) -> None:
        """Close the underlying :class:`FhirFetcher`."""
        self.fetcher.close()

    def fetch_missing(
        self, request: HookRequest, keys: list[str], deadline: float, allowed_bases: tuple[str, ...] = ()
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """Return (key -> data) for what was fetched and (key -> reason) for what failed.

        ``allowed_bases``: FHIR bases the authenticated caller may name, on top of the deployment's list.
        """
        patient_id = request.patient_id
        server = request.fhir_server
        unknown = [k for k in keys if k not in QUERIES_BY_KEY]
        failures = dict.fromkeys(unknown, "unknown prefetch key")
        wanted = [k for k in keys if k in QUERIES_BY_KEY]
        if not wanted:
            return {}, failures
        if not server or not patient_id:
            failures.update(dict.fromkeys(wanted, "no fhirServer or context.patientId"))
            return {}, failures
        allowed = [*self.settings.allowed_fhir_bases, *allowed_bases]
        if not is_allowed_base(server, allowed, self.settings.dev_mode):
            log.warning(
                "fhir fetch refused: fhirServer not in allowed_fhir_bases (keys=%s)", ",".join(wanted)
            )
            failures.update(dict.fromkeys(wanted, "fhirServer not allowed"))
            return {}, failures
        queries = {k: QUERIES_BY_KEY[k].render(patient_id) for k in wanted}
        outcomes = self.fetcher.fetch(server, request.access_token, queries, deadline)
        data: dict[str, Any] = {}
        for key, outcome in outcomes.items():
            if isinstance(outcome, FetchResult):
                data[key] = outcome.resource
            elif outcome.status == 404 and not _expected_type(queries[key])[1]:
                data[key] = None
            else:
                failures[key] = outcome.reason
        return data, failures


def _links(bundle: Mapping[str, Any]) -> list[dict[str, Any]]:
    links = bundle.get("link")
    return [link for link in links if isinstance(link, dict)] if isinstance(links, list) else []


def _entries(bundle: Mapping[str, Any]) -> list[dict[str, Any]]:
    entries = bundle.get("entry")
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def _next_link(bundle: Mapping[str, Any]) -> str | None:
    for link in _links(bundle):
        url = link.get("url")
        if link.get("relation") == "next" and isinstance(url, str) and url:
            return url
    return None
