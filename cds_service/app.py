"""The HTTP edge: a thin FastAPI app that parses, calls :mod:`cds_service.service` and renders JSON.

``uvicorn cds_service.app:app`` serves it with settings from the environment.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from cds_service import __version__
from cds_service.discovery import discovery_document
from cds_service.errors import CDSError, PayloadTooLargeError, RequestError
from cds_service.logs import configure_logging
from cds_service.outcomes import error_outcome, operation_outcome
from cds_service.service import Fetcher, handle_hook
from cds_service.settings import Settings, get_settings

logger = logging.getLogger("cds_service.hooks")

FHIR_JSON = "application/fhir+json"


class ORJSONResponse(JSONResponse):
    """JSON rendered with orjson: faster, and never emits NaN or non-standard JSON."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _outcome_response(status: int, body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=FHIR_JSON)


async def _read_body(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"request body over the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"request body over the {limit}-byte limit")
        chunks.append(chunk)
    try:
        return orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"the body is not valid JSON (at character {exc.pos})", field="$") from None


def create_app(settings: Settings | None = None, fetcher: Fetcher | None = None) -> FastAPI:
    """Build the app from ``settings`` (default: the environment) and an optional FHIR fetcher."""
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    app = FastAPI(
        title="IgG4-RD CDS Hooks service",
        version=__version__,
        description="CDS Hooks 2.0: consider IgG4-related disease before presuming cholangiocarcinoma.",
        default_response_class=ORJSONResponse,
    )
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type"],
        max_age=600,
    )

    @app.exception_handler(CDSError)
    async def cds_error(_request: Request, exc: CDSError) -> Response:
        return _outcome_response(exc.status_code, error_outcome(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        return _outcome_response(exc.status_code, operation_outcome(exc.status_code, str(exc.detail)))

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> Response:
        # The type only: a message or traceback could carry record content.
        logger.error("unexpected error", extra={"error_type": type(exc).__name__})
        return _outcome_response(500, operation_outcome(500, "internal error"))

    @app.get("/cds-services")
    def discovery() -> dict[str, Any]:
        """CDS Hooks discovery: the services, their hooks and prefetch templates."""
        return discovery_document()

    @app.post("/cds-services/{service_id}")
    async def call_service(service_id: str, request: Request) -> Response:
        """Answer a hook call with ``{"cards": [...]}``."""
        body = await _read_body(request, settings.max_body_bytes)
        try:
            outcome = await run_in_threadpool(handle_hook, service_id, body, settings, fetcher)
        except CDSError as exc:
            logger.info(
                "hook call refused",
                extra={"service": service_id, "status": exc.status_code, "error": type(exc).__name__},
            )
            raise
        indicators = [card["indicator"] for card in outcome.cards]
        logger.info(
            "hook call",
            extra={
                "service": service_id,
                "hook_instance": outcome.hook_instance,
                "status": 200,
                "cards": len(outcome.cards),
                "indicators": indicators,
                "timings_ms": outcome.timings_ms,
                "fetched": outcome.fetched,
                "skipped_resources": outcome.skipped_resources,
            },
        )
        return ORJSONResponse({"cards": outcome.cards})

    @app.get("/healthz", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app


app = create_app()
