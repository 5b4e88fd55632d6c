"""Each patient's resources, gathered from NDJSON files without holding the export in memory.

An external hash partition (a one-pass variant of an external sort): the first pass streams every line to
one of ``k`` spill files chosen by a hash of its patient id, so all of a patient's lines land in the same
file; the second pass loads one spill file at a time and groups it in a dictionary. Peak memory is one
partition (``partition_bytes``, 16 MB of NDJSON by default), whatever the size of the export up to
512 partitions (8 GB of NDJSON; beyond, partitions grow: raise ``--partition-mb``). The measurement that
chose it over DuckDB is in ``benchmarks/audit_scale.py`` and the README.
"""

from __future__ import annotations

import re
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final

from cds_service.audit.ndjson import iter_lines, parse_line, patient_of

DEFAULT_PARTITION_BYTES: Final = 16 * 1024 * 1024
MAX_PARTITIONS: Final = 512
"""Spill files open at once in the first pass (below the usual limit of 1024 open files)."""
GZIP_EXPANSION: Final = 8
"""How many bytes of NDJSON one byte of gzip is assumed to hold when sizing partitions."""
_FHIR_ID: Final = re.compile(rb"[A-Za-z0-9\-.]{1,64}")


@dataclass
class GroupingStats:
    """What the grouping saw: counts only, never patient data."""

    lines: int = 0
    resources: int = 0
    unattached: int = 0
    """Resources that belong to no patient (Organization, Practitioner ...): not needed, dropped."""
    unreadable: int = 0
    """Lines that are not a JSON object, or name a patient id that is not a FHIR id."""
    patients: int = 0
    partitions: int = 0
    by_type: dict[str, int] = field(default_factory=dict)


def _partition_count(files: Iterable[Path], partition_bytes: int) -> int:
    total = 0
    for path in files:
        size = path.stat().st_size
        total += size * GZIP_EXPANSION if path.name.endswith(".gz") else size
    return min(MAX_PARTITIONS, max(1, -(-total // partition_bytes)))


class PatientGroups:
    """Iterate ``(patient id, [NDJSON lines])``, one patient at a time, over a set of NDJSON files.

    Spill files live in a temporary directory under ``workdir`` (the system's by default) and are removed
    as soon as they are read. The patients come partition by partition, in id order within a partition.
    """

    def __init__(
        self,
        files: list[Path],
        workdir: Path | None = None,
        partition_bytes: int = DEFAULT_PARTITION_BYTES,
    ) -> None:
        self.files = files
        self.workdir = workdir
        self.partition_bytes = partition_bytes
        self.stats = GroupingStats()

    def _spill(self, folder: Path) -> list[Path]:
        count = _partition_count(self.files, self.partition_bytes)
        self.stats.partitions = count
        paths = [folder / f"part-{i:05d}.tsv" for i in range(count)]
        outputs: list[BinaryIO] = [p.open("wb") for p in paths]
        stats = self.stats
        try:
            for path in self.files:
                for line in iter_lines(path):
                    stats.lines += 1
                    resource = parse_line(line)
                    if resource is None:
                        stats.unreadable += 1
                        continue
                    patient = patient_of(resource)
                    if patient is None:
                        stats.unattached += 1
                        continue
                    key = patient.encode()
                    if not _FHIR_ID.fullmatch(key):
                        stats.unreadable += 1
                        continue
                    stats.resources += 1
                    rtype = str(resource.get("resourceType"))
                    stats.by_type[rtype] = stats.by_type.get(rtype, 0) + 1
                    outputs[zlib.crc32(key) % count].write(key + b"\t" + line + b"\n")
        finally:
            for out in outputs:
                out.close()
        return paths

    def __iter__(self) -> Iterator[tuple[str, list[bytes]]]:
        """Spill, then yield each patient with its lines; the spill files are gone when iteration ends."""
        with tempfile.TemporaryDirectory(prefix="igg4-audit-", dir=self.workdir) as tmp:
            for part in self._spill(Path(tmp)):
                groups: dict[bytes, list[bytes]] = {}
                with part.open("rb") as stream:
                    for row in stream:
                        key, _, line = row.rstrip(b"\n").partition(b"\t")
                        groups.setdefault(key, []).append(line)
                part.unlink()
                for key in sorted(groups):
                    self.stats.patients += 1
                    yield key.decode(), groups.pop(key)
