"""Reading Bulk Data NDJSON files (plain or gzip) line by line, and finding the patient a resource is about."""

from __future__ import annotations

import gzip
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any, Final

import orjson

NDJSON_SUFFIXES: Final = (".ndjson", ".ndjson.gz", ".jsonl", ".jsonl.gz")
PATIENT_ELEMENTS: Final = ("subject", "patient", "beneficiary")
"""Where a resource of the Patient compartment names its patient (the compartment's first elements)."""


def ndjson_files(folder: Path) -> list[Path]:
    """The NDJSON files of an export folder (``*.ndjson`` and ``*.ndjson.gz``), sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(NDJSON_SUFFIXES))


def _open(path: Path) -> IO[bytes] | gzip.GzipFile:
    with path.open("rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rb")
    return path.open("rb")


def iter_lines(path: Path) -> Iterator[bytes]:
    """The non-blank lines of one NDJSON file, gzip-compressed or not (decided by content, not by name)."""
    with _open(path) as stream:
        for line in stream:
            stripped = line.strip()
            if stripped:
                yield stripped


def _reference_id(value: Any) -> str | None:
    if not isinstance(value, Mapping):
        return None
    reference = value.get("reference")
    if not isinstance(reference, str):
        return None
    reference = reference.split("/_history/", 1)[0]
    if "Patient/" not in reference:
        return None
    found = reference.rsplit("Patient/", 1)[1]
    return found or None


def patient_of(resource: Mapping[str, Any]) -> str | None:
    """The id of the patient a resource belongs to: its own id for a Patient, else subject/patient."""
    if resource.get("resourceType") == "Patient":
        rid = resource.get("id")
        return rid if isinstance(rid, str) and rid else None
    for element in PATIENT_ELEMENTS:
        found = _reference_id(resource.get(element))
        if found is not None:
            return found
    return None


def parse_line(line: bytes) -> dict[str, Any] | None:
    """One NDJSON line as a JSON object, or None when it is not one (a broken line costs that line only)."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
