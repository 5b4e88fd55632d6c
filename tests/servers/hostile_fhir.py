"""A hostile FHIR server on loopback: endless bodies, gzip bombs, drip-fed answers and looping ``next`` links.

Its own ``ThreadingHTTPServer`` on its own port (an origin apart from :mod:`tests.servers.faulty_fhir`); the first
path segment picks the mode and the FHIR base is ``http://127.0.0.1:PORT/<mode>/fhir``:

=========  =========================================================================================
``big``    a valid searchset Bundle of about ``big_bytes`` bytes (plain, with Content-Length)
``endless`` a chunked body that never ends (a Bundle opening, then padding forever)
``gzipbomb`` ``Content-Encoding: gzip``, about 200 kB on the wire that inflate to ``bomb_bytes`` of valid JSON
``drip``   headers at once, then one byte every ``drip_every_s`` for ``drip_for_s`` seconds
``loop``   a Bundle whose ``next`` link names the page itself (``?page=1`` forever)
``cycle``  page 1 links to page 2, page 2 back to page 1
=========  =========================================================================================

:attr:`HostileFhirServer.open_responses` counts responses still being written: a client that closes its
connection ends the drip at the next byte.
"""

from __future__ import annotations

import contextlib
import json
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

MODES = ("big", "endless", "gzipbomb", "drip", "loop", "cycle")


def _bundle(ids: list[str], next_url: str | None = None) -> dict[str, Any]:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": {"resourceType": "Condition", "id": i}} for i in ids],
    }
    if next_url:
        bundle["link"] = [{"relation": "next", "url": next_url}]
    return bundle


def _gzip_bomb(size: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    head = b'{"resourceType": "Bundle", "type": "searchset", "entry": ['
    parts = [packer.compress(head)]
    block = b" " * (1 << 20)
    for _ in range(size // len(block)):
        parts.append(packer.compress(block))
    parts.append(packer.compress(b"]}"))
    parts.append(packer.flush())
    return b"".join(parts)


class HostileFhirServer:
    """The server and its knobs; use as a context manager."""

    def __init__(
        self,
        big_bytes: int = 3 << 20,
        bomb_bytes: int = 200 << 20,
        drip_every_s: float = 0.05,
        drip_for_s: float = 20.0,
    ) -> None:
        self.big_bytes = big_bytes
        self.drip_every_s = drip_every_s
        self.drip_for_s = drip_for_s
        self.bomb = _gzip_bomb(bomb_bytes)
        self.open_responses = 0
        self.requests = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="hostile-fhir", daemon=True)

    def base(self, mode: str) -> str:
        """FHIR base URL that behaves as ``mode``."""
        assert mode in MODES, mode
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/{mode}/fhir"

    def __enter__(self) -> HostileFhirServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _count(self, delta: int) -> None:
        with self._lock:
            self.open_responses += delta

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                """Stay quiet."""

            def handle(self) -> None:
                with contextlib.suppress(OSError):  # the client hung up mid-answer: what these tests want
                    super().handle()

            def do_GET(self) -> None:
                with server._lock:
                    server.requests += 1
                parts = urlsplit(self.path)
                mode = next((s for s in parts.path.split("/") if s), "")
                page = int(parse_qs(parts.query).get("page", ["1"])[0])
                server._count(1)
                try:
                    self._answer(mode, page)
                except OSError:
                    pass  # the client hung up
                finally:
                    server._count(-1)

            def _answer(self, mode: str, page: int) -> None:
                if mode == "big":
                    filler = "x" * 1000
                    count = server.big_bytes // 1100
                    bundle = _bundle([f"c{n}-{filler}" for n in range(count)])
                    self._send(json.dumps(bundle).encode())
                elif mode == "loop":
                    self._send(json.dumps(_bundle([f"c{page}"], "Condition?page=1")).encode())
                elif mode == "cycle":
                    self._send(json.dumps(_bundle([f"c{page}"], f"Condition?page={3 - page}")).encode())
                elif mode == "gzipbomb":
                    self._send(server.bomb, {"Content-Encoding": "gzip"})
                elif mode == "endless":
                    self._head({"Transfer-Encoding": "chunked"})
                    self._chunk(b'{"resourceType": "Bundle", "type": "searchset", "entry": [')
                    block = b" " * 65536
                    while not server._stopping.is_set():
                        self._chunk(block)
                elif mode == "drip":
                    self._head({"Content-Length": "1000000"})
                    waited = 0.0
                    while waited < server.drip_for_s and not server._stopping.wait(server.drip_every_s):
                        self.wfile.write(b" ")
                        self.wfile.flush()
                        waited += server.drip_every_s
                else:
                    self.send_error(404)

            def _head(self, headers: dict[str, str]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/fhir+json")
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()

            def _send(self, body: bytes, headers: dict[str, str] | None = None) -> None:
                self._head({"Content-Length": str(len(body)), **(headers or {})})
                self.wfile.write(body)

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

        return Handler


def hostile_fhir() -> Iterator[HostileFhirServer]:
    """Generator for a pytest fixture."""
    with HostileFhirServer() as server:
        yield server
