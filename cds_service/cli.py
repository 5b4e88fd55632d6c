"""The ``igg4-cds`` command: serve the service, run the demo, load fixtures, export feedback, audit."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from cds_service.errors import CDSError
from cds_service.fixtures.catalog import FIXTURE_DATE
from cds_service.hooks.discovery import SERVICE_FOR_HOOK, find_service
from cds_service.web.operation_outcome import error_outcome

DELEGATES = {
    "load-fixtures": "cds_service.fixtures.loader",
    "feedback-export": "cds_service.feedback.export",
    "audit": "cds_service.audit.command",
}
DELEGATES_HELP = {
    "load-fixtures": "load fhir_fixtures/ into a FHIR R4 server (see load-fixtures --help)",
    "feedback-export": "export feedback with acceptance and override rates (see feedback-export --help)",
    "audit": "silent mode: what the card would have shown over a Bulk Data export (see audit --help)",
}


# uvicorn[standard]'s event loop and HTTP parser (uvloop, httptools), named so a missing one fails loudly
# rather than falling back to asyncio and h11; the README's production command passes the same two.
SERVE_OPTIONS: dict[str, Any] = {"loop": "uvloop", "http": "httptools"}


def _serve(args: argparse.Namespace) -> int:
    import uvicorn  # noqa: PLC0415 - only the serve command needs the server

    from cds_service.settings import Settings  # noqa: PLC0415
    from cds_service.web.app import create_app  # noqa: PLC0415

    settings = Settings(dev_mode=True) if args.dev else Settings()
    host = args.host or settings.host
    port = args.port or settings.port
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        **SERVE_OPTIONS,
    )
    return 0


def _looks_like_a_file(target: str) -> bool:
    return target.endswith(".json") or os.sep in target or "/" in target


def _read_request(target: str) -> dict[str, Any]:
    path = Path(target)
    if path.is_file():
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    if _looks_like_a_file(target) and not path.is_dir():
        raise LookupError("file not found")
    from cds_service.fixtures.catalog import load_fixture  # noqa: PLC0415

    return load_fixture(target).request


def _demo(args: argparse.Namespace) -> int:
    from cds_service.fixtures.card_text import render_text  # noqa: PLC0415
    from cds_service.hooks.handler import handle_hook  # noqa: PLC0415
    from cds_service.settings import Settings  # noqa: PLC0415

    try:
        request = _read_request(args.request)
    except (OSError, ValueError, LookupError) as exc:
        print(f"cannot read {args.request}: {exc}", file=sys.stderr)
        return 2
    hook = request.get("hook")
    service_id = SERVICE_FOR_HOOK.get(hook) if isinstance(hook, str) else None
    if service_id is None:
        print(f"unsupported hook {hook!r}", file=sys.stderr)
        return 2
    today = date.fromisoformat(args.today) if args.today else None
    try:
        outcome = handle_hook(find_service(service_id), request, Settings(), today=today)
    except CDSError as exc:
        print(f"HTTP {exc.status_code}: {json.dumps(error_outcome(exc), indent=2)}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"cards": outcome.cards}, indent=2, ensure_ascii=False))
    else:
        print(render_text(outcome.cards))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="igg4-cds", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the CDS Hooks service")
    serve.add_argument("--host", help="address to listen on (default: IGG4_CDS_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: IGG4_CDS_PORT or 8080)")
    serve.add_argument(
        "--dev",
        action="store_true",
        help="local development mode: accept unauthenticated calls (logs a warning)",
    )
    serve.set_defaults(func=_serve)

    demo = sub.add_parser("demo", help="evaluate a fixture or hook-request file and print the card")
    demo.add_argument(
        "request", help="a fixture name or number (01-published-case, 01 or 1) or a hook request JSON file"
    )
    demo.add_argument(
        "--today", help=f"evaluation date YYYY-MM-DD (fixtures were written for {FIXTURE_DATE.isoformat()})"
    )
    demo.add_argument("--json", action="store_true", help="print the CDS Hooks response JSON instead")
    demo.set_defaults(func=_demo)

    # Listed for --help; main() hands their arguments to the modules that implement them.
    for name, text in DELEGATES_HELP.items():
        sub.add_parser(name, help=text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``igg4-cds`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DELEGATES:
        module = importlib.import_module(DELEGATES[argv[0]])
        result: int = module.main(argv[1:])
        return result
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (``igg4-cds demo 01 | head``): stop quietly, as Unix tools do. Point stdout at
        # /dev/null so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
