#!/usr/bin/env bash
# Install the real FHIR R4 test server (sekmet-fhir, pinned) into its own virtualenv.
#
# The server has dependencies of its own (FastAPI, uvicorn, fhirpathpy, lxml, ...) that must not mix with the
# service's pinned ones, so it lives in a separate venv: $IGG4_FHIR_SERVER_VENV, default <repo>/.venv-fhir.
# Idempotent: re-running with the pinned version already installed does nothing but check it.
# tests/servers/fhir.py starts it as: <venv>/bin/sekmet serve --config <settings.yaml> --host 127.0.0.1 --port N
set -euo pipefail

SEKMET_VERSION="0.1.1"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${IGG4_FHIR_SERVER_VENV:-$repo_root/.venv-fhir}"
python="${PYTHON:-python3}"

if [[ -x "$venv/bin/python" ]] \
    && "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('sekmet-fhir') != '$SEKMET_VERSION')" 2>/dev/null \
    && [[ -x "$venv/bin/sekmet" ]]; then
    echo "sekmet-fhir $SEKMET_VERSION already installed in $venv"
    exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
    echo "creating virtualenv $venv"
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "sekmet-fhir==$SEKMET_VERSION"
"$venv/bin/python" -c "import sekmet.main" >/dev/null
echo "sekmet-fhir $SEKMET_VERSION installed in $venv"
