"""A bare FastAPI app: the floor that the CDS service's hook latency is compared against.

One POST endpoint with the same path shape as the service. It reads the body, parses it with
``orjson.loads`` (as the service does) and returns ``{"cards": []}``; nothing else. Serve it with::

    uvicorn --app-dir benchmarks bare_endpoint:app --workers 1 --log-level warning

``benchmarks/hook_latency.py`` starts it itself, next to the real service, with the same uvicorn settings.
"""

from __future__ import annotations

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

EMPTY_CARDS = orjson.dumps({"cards": []})

app = FastAPI(title="bare endpoint (benchmark floor)")


@app.post("/cds-services/{service_id}")
async def call_service(service_id: str, request: Request) -> Response:
    """Read and parse the body, answer with no cards."""
    orjson.loads(await request.body())
    return Response(EMPTY_CARDS, media_type="application/json")


@app.get("/healthz", include_in_schema=False)
def health() -> dict[str, str]:
    """Readiness probe, like the service's."""
    return {"status": "ok"}
