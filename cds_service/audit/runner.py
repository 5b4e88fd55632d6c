"""The audit from NDJSON files to the out folder: grouping, a process pool, pseudonyms, outputs, report."""

from __future__ import annotations

import hashlib
import hmac
import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from cds_service.audit.evaluate import AuditOptions, PatientRow, evaluate_lines
from cds_service.audit.grouping import DEFAULT_PARTITION_BYTES, GroupingStats, PatientGroups
from cds_service.audit.outputs import RowWriter
from cds_service.audit.report import write_report

log = logging.getLogger(__name__)

BATCH_PATIENTS: Final = 32
IN_FLIGHT_PER_WORKER: Final = 4
Batch = list[tuple[str, list[bytes]]]


def pseudonym(key: bytes, patient_id: str) -> str:
    """HMAC-SHA256 of the patient id, keyed and prefixed as the feedback store's ``patient_hash``.

    With the same key (``IGG4_CDS_FEEDBACK_HASH_KEY``) an audit row and the cards the service recorded for
    that patient carry the same hash.
    """
    return hmac.new(key, b"patient:" + patient_id.strip().encode(), hashlib.sha256).hexdigest()


def evaluate_batch(batch: Batch, options: AuditOptions) -> tuple[list[PatientRow], int]:
    """Evaluate a batch of patients (run in a worker process); returns the rows and how many failed."""
    rows: list[PatientRow] = []
    failed = 0
    for patient_id, lines in batch:
        try:
            rows.append(evaluate_lines(patient_id, lines, options))
        except Exception as exc:  # one patient's unexpected data must not end the audit
            failed += 1
            # the error's type only: a message or traceback could carry record values
            log.warning("audit evaluation failed for one patient", extra={"error": type(exc).__name__})
    return rows, failed


def _batches(groups: Iterator[tuple[str, list[bytes]]], size: int) -> Iterator[Batch]:
    batch: Batch = []
    for group in groups:
        batch.append(group)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass
class AuditResult:
    """What the run did: counts and timings (no patient data)."""

    patients: int = 0
    failed: int = 0
    seconds: float = 0.0
    workers: int = 1
    grouping: GroupingStats = field(default_factory=GroupingStats)
    out: Path = Path()


@dataclass
class AuditRun:
    """One audit over a set of NDJSON files into ``out``."""

    files: Sequence[Path]
    out: Path
    options: AuditOptions
    workers: int = 0
    """Worker processes; 0 means one per CPU available, 1 evaluates in this process."""
    hash_key: bytes | None = None
    """HMAC key for the pseudonyms; None keeps the FHIR ids (``--keep-ids``)."""
    marks: dict[str, str] = field(default_factory=dict)
    """FHIR patient id -> label (the fixture name) shown in the report."""
    progress: bool | None = None
    """Show a progress bar; None: only when stderr is a terminal."""
    partition_bytes: int = DEFAULT_PARTITION_BYTES
    workdir: Path | None = None
    meta: dict[str, str] = field(default_factory=dict)

    def _finish(self, row: PatientRow, writer: RowWriter) -> None:
        row.fixture = self.marks.get(row.patient, "")
        if self.hash_key is not None:
            row.patient = pseudonym(self.hash_key, row.patient)
        writer.write(row)

    def _progress(self) -> AbstractContextManager[Any]:
        show = sys.stderr.isatty() if self.progress is None else self.progress
        if not show:
            return nullcontext(None)
        return Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TextColumn("{task.completed} patients"),
            TimeElapsedColumn(),
            transient=False,
        )

    def run(self) -> AuditResult:
        """Evaluate every patient, write patients.csv, patients.parquet and report.html."""
        started = time.perf_counter()
        workers = self.workers or len(os.sched_getaffinity(0))
        groups = PatientGroups(list(self.files), self.workdir, self.partition_bytes)
        result = AuditResult(workers=workers, grouping=groups.stats, out=self.out)
        with RowWriter(self.out) as writer, self._progress() as bar:
            task = bar.add_task("auditing", total=None) if bar is not None else None

            def advance(rows: list[PatientRow], failed: int) -> None:
                for row in rows:
                    self._finish(row, writer)
                result.patients += len(rows)
                result.failed += failed
                if bar is not None and task is not None:
                    bar.update(task, advance=len(rows) + failed)

            batches = _batches(iter(groups), BATCH_PATIENTS)
            if workers == 1:
                for batch in batches:
                    advance(*evaluate_batch(batch, self.options))
            else:
                self._pool(batches, workers, advance)
        result.seconds = time.perf_counter() - started
        meta = {
            **self.meta,
            "patients": str(result.patients),
            "patients that could not be evaluated": str(result.failed),
            "resources read": str(groups.stats.resources),
            "index date": self.options.as_of.isoformat()
            if self.options.as_of
            else "when the presumption began",
            "patient ids": "FHIR ids (--keep-ids)" if self.hash_key is None else "HMAC-SHA256 pseudonyms",
        }
        write_report(writer.parquet_path, self.out / "report.html", meta)
        log.info(
            "audit finished",
            extra={"patients": result.patients, "failed": result.failed, "seconds": round(result.seconds, 2)},
        )
        return result

    def _pool(
        self, batches: Iterator[Batch], workers: int, advance: Callable[[list[PatientRow], int], None]
    ) -> None:
        """Keep at most ``IN_FLIGHT_PER_WORKER`` batches per worker queued: memory stays bounded."""
        limit = workers * IN_FLIGHT_PER_WORKER
        # forkserver, not fork: the progress bar's thread runs while the pool starts
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["cds_service.audit.evaluate"])
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            pending: set[Future[tuple[list[PatientRow], int]]] = set()
            for batch in batches:
                pending.add(pool.submit(evaluate_batch, batch, self.options))
                if len(pending) >= limit:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        advance(*future.result())
            for future in pending:
                advance(*future.result())
