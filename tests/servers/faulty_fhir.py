"""A small misbehaving FHIR server on loopback, for testing how the fetcher copes with bad servers.

One stdlib ``ThreadingHTTPServer`` in a daemon thread serves every mode; the first path segment picks the
mode and the FHIR base is ``http://127.0.0.1:PORT/<mode>/fhir`` (see :meth:`FaultyFhirServer.base`):

=============  ==================================================================================
``ok``         a searchset Bundle with one entry (reads answer a Patient)
``slow``       sleeps ``slow_s`` seconds (past any budget) before answering like ``ok``
``500``        HTTP 500 with an OperationOutcome
``401``        HTTP 401 with a ``WWW-Authenticate`` challenge
``notjson``    HTTP 200, ``application/fhir+json`` content type, HTML body
``garbage``    HTTP 200 JSON that is no FHIR resource
``crossorigin`` a Bundle whose ``next`` link points to another origin
``aliased``    two pages, page 1's ``next`` an absolute ``http://127.0.0.1:PORT/…`` link (call it as ``localhost``)
``paged``      ``total_pages`` pages of one entry each (``?page=N``), chained by relative ``next`` links
``redirect``   HTTP 302 to another origin
``notx``       refuses transactions (POST to the base: 405 ``not-supported``) but takes PUTs: 201 the
               first time an id is seen, 200 after, 400 when the resource has a ``bogus`` element
=============  ==================================================================================

The pytest fixture is ``faulty_fhir`` (session scope); import ``faulty_fhir_fixture`` to make it visible.
Every request's path and headers are recorded in :attr:`FaultyFhirServer.requests` (for token checks).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

MODES = (
    "ok",
    "slow",
    "500",
    "401",
    "notjson",
    "garbage",
    "crossorigin",
    "paged",
    "redirect",
    "notx",
    "aliased",
)


@dataclass(frozen=True)
class RecordedRequest:
    """One request the faulty server received."""

    path: str
    headers: dict[str, str]


class FaultyFhirServer:
    """The server and its knobs; start with :meth:`start`, stop with :meth:`stop`."""

    def __init__(self, slow_s: float = 10.0, total_pages: int = 4) -> None:
        self.slow_s = slow_s
        self.total_pages = total_pages
        self.requests: list[RecordedRequest] = []
        self.stored: set[str] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="faulty-fhir", daemon=True)

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return int(self._httpd.server_address[1])

    def base(self, mode: str) -> str:
        """FHIR base URL that behaves as ``mode``."""
        assert mode in MODES, mode
        return f"http://127.0.0.1:{self.port}/{mode}/fhir"

    def start(self) -> FaultyFhirServer:
        """Start serving in a daemon thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Wake sleeping handlers and stop serving."""
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def clear(self) -> None:
        """Forget recorded requests."""
        with self._lock:
            self.requests.clear()

    def _record(self, path: str, headers: dict[str, str]) -> None:
        with self._lock:
            self.requests.append(RecordedRequest(path, headers))

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                """Stay quiet."""

            def do_GET(self) -> None:
                server._record(self.path, dict(self.headers.items()))
                parts = urlsplit(self.path)
                segments = [s for s in parts.path.split("/") if s]
                mode = segments[0] if segments else ""
                resource_path = segments[2:] if len(segments) > 2 else []
                query = parse_qs(parts.query)
                if mode == "slow":
                    server._stopping.wait(server.slow_s)
                    mode = "ok"
                if mode == "ok":
                    self._send_json(200, _ok_body(resource_path))
                elif mode == "500":
                    self._send_json(500, _outcome("boom: internal failure"))
                elif mode == "401":
                    self._send_json(
                        401, _outcome("secret-diagnostics"), {"WWW-Authenticate": 'Bearer realm="x"'}
                    )
                elif mode == "notjson":
                    self._send(200, b"<html><body>Login page</body></html>", "application/fhir+json")
                elif mode == "garbage":
                    self._send_json(200, {"hello": "world", "entry": [1, 2, 3]})
                elif mode == "crossorigin":
                    bundle = _bundle(["p1"], next_url="http://127.0.0.2:9/fhir/Condition?page=2")
                    self._send_json(200, bundle)
                elif mode == "paged":
                    page = int(query.get("page", ["1"])[0])
                    nxt = None
                    if page < server.total_pages:
                        nxt = f"{'/'.join(resource_path) or 'Condition'}?page={page + 1}"
                    self._send_json(200, _bundle([f"c{page}"], next_url=nxt, total=server.total_pages))
                elif mode == "aliased":  # page 1 links to page 2 by absolute URL on 127.0.0.1
                    page = int(query.get("page", ["1"])[0])
                    nxt = (
                        f"http://127.0.0.1:{server.port}/aliased/fhir/Condition?page=2" if page == 1 else None
                    )
                    self._send_json(200, _bundle([f"a{page}"], next_url=nxt))
                elif mode == "redirect":
                    self._send(302, b"", "text/plain", {"Location": "http://127.0.0.2:9/fhir/Condition"})
                else:
                    self._send_json(404, _outcome("unknown mode"))

            def do_POST(self) -> None:
                server._record(self.path, dict(self.headers.items()))
                self._read_body()
                if self.path.startswith("/notx/"):
                    self._send_json(405, _outcome("transactions are not supported", "not-supported"))
                else:
                    self._send_json(404, _outcome("unknown mode"))

            def do_PUT(self) -> None:
                server._record(self.path, dict(self.headers.items()))
                body = self._read_body()
                if not self.path.startswith("/notx/"):
                    self._send_json(404, _outcome("unknown mode"))
                elif not isinstance(body, dict) or "bogus" in body:
                    self._send_json(400, _outcome("Unknown element 'bogus'", "structure"))
                else:
                    key = self.path.split("/fhir/", 1)[-1]
                    with server._lock:
                        created = key not in server.stored
                        server.stored.add(key)
                    self._send_json(201 if created else 200, body)

            def _read_body(self) -> object:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    return json.loads(raw) if raw else None
                except ValueError:
                    return None

            def _send_json(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
                self._send(status, json.dumps(body).encode(), "application/fhir+json", headers)

            def _send(
                self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None
            ) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (as the fetcher does at its deadline)

        return Handler


def _outcome(text: str, code: str = "exception") -> dict[str, Any]:
    issue = {"severity": "error", "code": code, "diagnostics": text}
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def _bundle(ids: list[str], next_url: str | None = None, total: int | None = None) -> dict[str, Any]:
    links = [{"relation": "self", "url": "Condition"}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total if total is not None else len(ids),
        "link": links,
        "entry": [{"resource": {"resourceType": "Condition", "id": i}} for i in ids],
    }


def _ok_body(resource_path: list[str]) -> dict[str, Any]:
    if len(resource_path) == 2:
        return {"resourceType": resource_path[0], "id": resource_path[1]}
    return _bundle(["c1"])


@pytest.fixture(scope="session", name="faulty_fhir")
def faulty_fhir_fixture() -> Iterator[FaultyFhirServer]:
    """A running :class:`FaultyFhirServer` for the whole test session."""
    server = FaultyFhirServer().start()
    try:
        yield server
    finally:
        server.stop()
