"""The bounded streaming body reader: a FHIR response is read within a byte budget and a deadline.

Bodies are streamed and counted after decompression, so an endless body or a gzip bomb costs at most the
budget in memory, and the deadline is checked between reads, so no thread keeps reading after the caller
gave up. Failures raise :class:`~cds_service.fhir.results.QueryError` with a safe reason.
"""

from __future__ import annotations

import time
from typing import Final

import requests
import urllib3.exceptions

from cds_service.fhir.results import QueryError

READ_CHUNK: Final = 64 * 1024


class ByteBudget:
    """Bytes one query may still read, across its pages (counted after decompression)."""

    def __init__(self, limit: int) -> None:
        self.left = limit
        self.reason = f"response over the {limit}-byte limit"


def read_body(response: requests.Response, deadline: float, timeout_reason: str, budget: ByteBudget) -> bytes:
    """Stream the body, decompressed, stopping at the byte budget or the deadline (checked between reads).

    ``read1`` returns what one socket read gave, so a server dripping bytes cannot keep the loop from
    looking at the clock; urllib3 decompresses at most ``READ_CHUNK`` bytes per call (no bomb expansion).
    """
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and "Content-Encoding" not in response.headers and int(declared) > budget.left:
        raise QueryError(budget.reason)
    chunks: list[bytes] = []
    try:
        while True:
            if time.monotonic() >= deadline:
                raise QueryError(timeout_reason)
            chunk = response.raw.read1(READ_CHUNK, decode_content=True)
            if not chunk:
                break
            budget.left -= len(chunk)
            if budget.left < 0:
                raise QueryError(budget.reason)
            chunks.append(chunk)
    except (urllib3.exceptions.ReadTimeoutError, TimeoutError) as exc:
        raise QueryError(timeout_reason) from exc
    except urllib3.exceptions.DecodeError as exc:
        raise QueryError("undecodable content encoding") from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise QueryError("connection broken") from exc
    return b"".join(chunks)
