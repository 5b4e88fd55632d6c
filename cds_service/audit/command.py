"""``igg4-cds audit``: run the card silently over a population (Bulk Data NDJSON or a server's ``$export``).

    igg4-cds audit --ndjson EXPORT_DIR --out OUT_DIR
    igg4-cds audit --fhir-server URL [--group ID] --client-id ID --private-key key.pem --out OUT_DIR

Writes OUT_DIR/patients.csv, patients.parquet and report.html. Patient ids are HMAC-SHA256 pseudonyms
(key: ``IGG4_CDS_AUDIT_HASH_KEY``, else the feedback store's ``IGG4_CDS_FEEDBACK_HASH_KEY``, else a random
key for this run only) unless ``--keep-ids``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import sys
import tempfile
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from cds_service.audit.bulk import BackendServices, BearerToken, BulkClient, BulkExportError
from cds_service.audit.evaluate import AuditOptions
from cds_service.audit.ndjson import ndjson_files
from cds_service.audit.runner import AuditRun
from cds_service.hooks.handler import core_config
from cds_service.settings import Settings

log = logging.getLogger(__name__)

HASH_KEY_ENV = "IGG4_CDS_AUDIT_HASH_KEY"
BEARER_TOKEN_ENV = "IGG4_CDS_AUDIT_BEARER_TOKEN"  # noqa: S105 - a variable name, not a token


def build_parser() -> argparse.ArgumentParser:
    """The ``audit`` subcommand's arguments."""
    parser = argparse.ArgumentParser(
        prog="igg4-cds audit", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--ndjson", type=Path, help="folder of Bulk Data NDJSON files (.ndjson or .ndjson.gz)"
    )
    source.add_argument("--fhir-server", help="FHIR base URL to run $export against")
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for patients.csv/.parquet, report.html"
    )
    parser.add_argument(
        "--as-of", type=date.fromisoformat, help="evaluate everyone at this date (YYYY-MM-DD)"
    )
    parser.add_argument("--keep-ids", action="store_true", help="keep FHIR patient ids (testing only)")
    parser.add_argument("--workers", type=int, default=0, help="worker processes (default: one per CPU)")
    parser.add_argument(
        "--mark-fixtures", type=Path, help="fhir_fixtures folder: mark its patients in the report"
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: when stderr is a terminal)",
    )
    parser.add_argument(
        "--partition-mb", type=int, default=16, help="NDJSON megabytes per grouping partition"
    )
    parser.add_argument("--today", type=date.fromisoformat, help=argparse.SUPPRESS)
    server = parser.add_argument_group("FHIR server ($export)")
    server.add_argument("--group", help="export Group/ID only")
    server.add_argument(
        "--level",
        choices=("system", "patient"),
        default="system",
        help="[base]/$export or [base]/Patient/$export (ignored with --group)",
    )
    server.add_argument(
        "--bearer-token-file", type=Path, help=f"file holding a bearer token (or set {BEARER_TOKEN_ENV})"
    )
    server.add_argument("--client-id", help="SMART Backend Services client id")
    server.add_argument("--private-key", type=Path, help="PEM private key registered for --client-id")
    server.add_argument("--key-id", help="kid of the key (default: its JWK thumbprint)")
    server.add_argument("--token-url", default="", help="token endpoint (default: from smart-configuration)")
    server.add_argument("--scope", default="system/*.read")
    server.add_argument("--keep-export", type=Path, help="keep the downloaded NDJSON in this folder")
    return parser


def fixture_marks(folder: Path) -> dict[str, str]:
    """Patient id -> fixture folder name, from ``<folder>/*/bundle.json``."""
    marks: dict[str, str] = {}
    for bundle_path in sorted(folder.glob("*/bundle.json")):
        bundle = json.loads(bundle_path.read_text(encoding="utf-8"))
        for entry in bundle.get("entry", []):
            resource = entry.get("resource", {})
            if resource.get("resourceType") == "Patient" and isinstance(resource.get("id"), str):
                marks[resource["id"]] = bundle_path.parent.name
    return marks


def _hash_key(settings: Settings) -> tuple[bytes, str]:
    value = os.environ.get(HASH_KEY_ENV, "").strip()
    if value:
        return value.encode(), HASH_KEY_ENV
    if settings.feedback_hash_key is not None:
        return settings.feedback_hash_key.get_secret_value().strip().encode(), "the feedback hash key"
    return secrets.token_bytes(32), "a random key for this run (pseudonyms not linkable to other runs)"


def _authorizer(args: argparse.Namespace) -> BearerToken | BackendServices | None:
    if args.client_id or args.private_key:
        if not (args.client_id and args.private_key):
            raise BulkExportError("--client-id and --private-key go together")
        return BackendServices(
            args.client_id, args.private_key.read_bytes(), args.scope, args.token_url, key_id=args.key_id
        )
    token = os.environ.get(BEARER_TOKEN_ENV, "").strip()
    if args.bearer_token_file:
        token = args.bearer_token_file.read_text().strip()
    return BearerToken(token) if token else None


def _export(args: argparse.Namespace, folder: Path) -> list[Path]:
    client = BulkClient(
        args.fhir_server,
        _authorizer(args),
        group=args.group,
        level=args.level,
        on_poll=lambda progress: log.info("export in progress", extra={"progress": progress}),
    )
    job = client.run(folder)
    print(f"exported {len(job.files)} files after {job.polls} status polls", file=sys.stderr)
    return job.files


def run(args: argparse.Namespace) -> int:
    """Run the audit described by the parsed arguments; returns the exit status."""
    settings = Settings()
    options = AuditOptions(core_config(settings), as_of=args.as_of, today=args.today)
    key, key_source = (None, "") if args.keep_ids else _hash_key(settings)
    marks = fixture_marks(args.mark_fixtures) if args.mark_fixtures else {}
    meta = {"pseudonym key": key_source} if key_source else {}
    with tempfile.TemporaryDirectory(prefix="igg4-export-") as tmp:
        if args.ndjson is not None:
            files = ndjson_files(args.ndjson)
            meta["source"] = "NDJSON folder"
        else:
            folder = args.keep_export or Path(tmp)
            try:
                files = _export(args, folder)
            except (BulkExportError, OSError) as exc:
                print(f"export failed: {exc}", file=sys.stderr)
                return 1
            meta["source"] = f"$export ({'Group' if args.group else args.level} level)"
        if not files:
            print("no NDJSON files to audit", file=sys.stderr)
            return 1
        result = AuditRun(
            files,
            args.out,
            options,
            workers=args.workers,
            hash_key=key,
            marks=marks,
            progress=args.progress,
            partition_bytes=args.partition_mb << 20,
            meta=meta,
        ).run()
    rate = result.patients / result.seconds if result.seconds else 0.0
    print(
        f"{result.patients} patients in {result.seconds:.1f} s ({rate:.0f}/s, {result.workers} workers); "
        f"{result.failed} could not be evaluated; wrote {args.out}/patients.csv, patients.parquet, "
        "report.html",
        file=sys.stderr,
    )
    return 0 if result.failed == 0 else 3


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``igg4-cds audit``."""
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
