"""Regenerate every ``fhir_fixtures/*/request.json`` from its ``bundle.json`` and ``hook.json``.

Usage (from anywhere): ``python fhir_fixtures/build_requests.py [--check]``; the same as
``python -m cds_service.fixtures.catalog``. ``--check`` writes nothing and exits 1 when a request has drifted.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from cds_service.fixtures.catalog import main  # noqa: E402 - needs the repo root on sys.path first

if __name__ == "__main__":
    raise SystemExit(main([*sys.argv[1:], "--root", str(Path(__file__).resolve().parent)]))
