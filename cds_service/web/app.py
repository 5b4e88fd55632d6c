"""The HTTP edge: a thin FastAPI app that authenticates, parses, calls :mod:`cds_service.hooks.handler`, renders.

``uvicorn cds_service.web.app:app`` serves it with settings from the environment.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import date
from functools import partial
from typing import Any, Final

import orjson
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException

from cds_service import __version__
from cds_service.errors import (
    AuthenticationError,
    CDSError,
    PayloadTooLargeError,
    RequestError,
)
from cds_service.feedback.request import parse_feedback
from cds_service.feedback.store import CardBatch, shown_cards
from cds_service.fhir.client import FHIR_JSON
from cds_service.hooks.discovery import discovery_document, find_service
from cds_service.hooks.fetcher import PrefetchFetcher
from cds_service.hooks.handler import Fetcher, handle_hook
from cds_service.logs import configure_logging
from cds_service.settings import Settings, get_settings
from cds_service.web.deps import Dependencies
from cds_service.web.operation_outcome import error_outcome, operation_outcome
from cds_service.web.preview import preview_router

logger = logging.getLogger("cds_service.calls")


class ORJSONResponse(JSONResponse):
    """JSON rendered with orjson: faster, and never emits NaN or non-standard JSON."""

    def render(self, content: Any) -> bytes:
        """Serialise ``content`` with orjson."""
        return orjson.dumps(content)


METHOD_HINT: Final = (
    "a CDS service is called with POST and a hook request as JSON (see the README's 'Calling the service'); "
    "GET /cds-services lists the services"
)
"""The diagnostics of a 405, for someone who opened a hook URL in a browser."""


def _outcome_response(status: int, body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=FHIR_JSON)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's HTTP errors (404, 405) as OperationOutcomes, keeping their headers (405: ``Allow``)."""
    assert isinstance(exc, StarletteHTTPException)  # registered for this type only
    detail = (
        f"{request.method} is not allowed here: {METHOD_HINT}" if exc.status_code == 405 else str(exc.detail)
    )
    response = _outcome_response(exc.status_code, operation_outcome(exc.status_code, detail))
    response.headers.update(exc.headers or {})
    return response


class OutcomeCORSMiddleware(CORSMiddleware):
    """Starlette's CORS handling, with refused preflights answered as OperationOutcomes like every error."""

    def preflight_response(self, request_headers: Headers) -> Response:
        """Starlette's preflight answer; a refusal becomes an OperationOutcome with the same CORS headers."""
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        detail = bytes(response.body).decode(errors="replace")
        refused = _outcome_response(response.status_code, operation_outcome(response.status_code, detail))
        for name, value in response.headers.items():
            if name.lower().startswith("access-control-") or name.lower() == "vary":
                refused.headers[name] = value
        return refused


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


def _public_url(request: Request, settings: Settings) -> str:
    """The URL the client called, as the JWT ``aud`` names it (behind a proxy: from public_base_url)."""
    if settings.public_base_url:
        return settings.public_base_url.rstrip("/") + request.url.path
    return str(request.url.replace(query=None, fragment=None))


def cors_origins(settings: Settings) -> list[str]:
    """The browser origins allowed: as configured; in development mode any (``*``) when none are configured.

    :raises ValueError: for ``*`` outside development mode (only configured origins may call from a browser).
    """
    if settings.dev_mode:
        return settings.cors_origins or ["*"]
    if "*" in settings.cors_origins:
        raise ValueError("CORS origin '*' is allowed in development mode only: list the EHR's origins")
    return settings.cors_origins


def create_app(
    settings: Settings | None = None,
    fetcher: Fetcher | None = None,
    today: Callable[[], date] | None = None,
) -> FastAPI:
    """Build the app from ``settings`` (default: the environment) and an optional FHIR fetcher.

    ``today`` fixes the evaluation date (the lab lookback window), for demos and tests; default: the UTC date.
    """
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    deps = Dependencies.from_settings(settings, fetcher if fetcher is not None else PrefetchFetcher(settings))
    if settings.dev_mode:
        logger.warning(
            "local development mode: unauthenticated calls accepted, loopback FHIR servers allowed"
        )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        deps.close()

    app = FastAPI(
        lifespan=lifespan,
        title="IgG4-RD CDS Hooks service",
        version=__version__,
        description="CDS Hooks 2.0: consider IgG4-related disease before presuming cholangiocarcinoma.",
        default_response_class=ORJSONResponse,
        redirect_slashes=False,
        # The API document only in development mode: in production it would map the service for a prober.
        docs_url="/docs" if settings.dev_mode else None,
        openapi_url="/openapi.json" if settings.dev_mode else None,
        redoc_url=None,
    )
    app.state.deps = deps
    app.add_middleware(
        OutcomeCORSMiddleware,
        allow_origins=cors_origins(settings),
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type"],
        max_age=600,
    )

    @app.exception_handler(AuthenticationError)
    async def unauthenticated(request: Request, exc: AuthenticationError) -> Response:
        # A bare 401: the reason is for the operator's log only.
        logger.warning(
            "authentication failed",
            extra={
                "path": request.url.path,
                "url_called": str(request.url.replace(query=None, fragment=None)),
                "reason": exc.reason,
                "issuer": exc.issuer,
            },
        )
        return Response(status_code=401, headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(CDSError)
    async def cds_error(request: Request, exc: CDSError) -> Response:
        logger.info(
            "call refused",
            extra={
                "path": request.url.path,
                "status": exc.status_code,
                "error": type(exc).__name__,
                "hook_instance": exc.hook_instance,
                "read": exc.read_counts,
            },
        )
        return _outcome_response(exc.status_code, error_outcome(exc))

    app.add_exception_handler(StarletteHTTPException, _http_error)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> Response:
        # The type only: a message or traceback could carry record content.
        logger.error("unexpected error", extra={"error_type": type(exc).__name__})
        return _outcome_response(500, operation_outcome(500, "internal error"))

    @app.get("/cds-services/", include_in_schema=False)  # EHR set-up screens often add the slash
    @app.get("/cds-services")
    async def discovery() -> dict[str, Any]:
        """CDS Hooks discovery: the services, their hooks and prefetch templates (no authentication)."""
        return discovery_document()

    @app.post("/cds-services/{service_id}")
    async def call_service(service_id: str, request: Request) -> Response:
        """Answer a hook call with ``{"cards": [...]}``."""
        started = time.perf_counter()
        service = find_service(service_id)
        # In a worker thread: verifying may fetch a key set, which must never stall the event loop.
        caller = await run_in_threadpool(
            deps.authenticate, request.headers.get("authorization"), _public_url(request, settings)
        )
        body = await _read_body(request, settings.max_body_bytes)
        run = partial(
            handle_hook,
            allowed_bases=caller.allowed_fhir_bases if caller else (),
            today=today() if today else None,
        )
        outcome = await run_in_threadpool(run, service, body, settings, deps.fetcher)
        if outcome.cards:
            patient = f"Patient/{outcome.patient_id}" if outcome.patient_id else None
            cards = shown_cards(outcome.cards, outcome.assessment)
            issuer = caller.iss if caller else None
            deps.recorder.submit(
                CardBatch(service_id, service.hook, outcome.hook_instance, patient, cards, issuer)
            )
        logger.info(
            "hook call",
            extra={
                "service": service_id,
                "hook_instance": outcome.hook_instance,
                "status": 200,
                "cards": len(outcome.cards),
                "indicators": [card["indicator"] for card in outcome.cards],
                "timings_ms": outcome.timings_ms,
                "total_ms": round((time.perf_counter() - started) * 1000, 3),
                "fetched": outcome.fetched,
                "skipped_resources": outcome.skipped_resources,
                "read": outcome.read.as_log(),
            },
        )
        return Response(orjson.dumps({"cards": outcome.cards}), media_type="application/json")

    @app.post("/cds-services/{service_id}/feedback")
    async def feedback(service_id: str, request: Request) -> Response:
        """Store CDS Hooks 2.0 feedback (accepted suggestions, overrides); resent items are stored once."""
        find_service(service_id)
        caller = await run_in_threadpool(
            deps.authenticate, request.headers.get("authorization"), _public_url(request, settings)
        )
        parsed = parse_feedback(await _read_body(request, settings.max_body_bytes))
        issuer = caller.iss if caller else None
        stored = await run_in_threadpool(deps.record_feedback, service_id, parsed.feedback, issuer)
        logger.info("feedback", extra={"service": service_id, "items": len(parsed.feedback), "new": stored})
        return Response(status_code=200)

    @app.get("/healthz", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    if settings.dev_mode:
        app.include_router(preview_router(settings))
    return app


_default_app: FastAPI | None = None


def __getattr__(name: str) -> FastAPI:
    """``app``: the app built from the environment's settings on first use (``uvicorn cds_service.web.app:app``).

    Built lazily so that importing :func:`create_app` (``igg4-cds serve``, tests) builds no app of its own.
    """
    global _default_app  # noqa: PLW0603 - the one process-wide app of the import string
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _default_app is None:
        _default_app = create_app()
    return _default_app
