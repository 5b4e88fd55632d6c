"""patients.csv and patients.parquet, written row by row as the patients are evaluated."""

from __future__ import annotations

import csv
from dataclasses import fields
from datetime import date
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final

import pyarrow as pa
import pyarrow.parquet as pq

from cds_service.audit.evaluate import PatientRow

COLUMNS: Final = tuple(f.name for f in fields(PatientRow))
BATCH_ROWS: Final = 2000
_INT = pa.int32()
SCHEMA: Final = pa.schema(
    [
        ("patient", pa.string()),
        ("index_date", pa.date32()),
        ("index_source", pa.string()),
        ("presumed", pa.bool_()),
        ("tissue_proven", pa.bool_()),
        ("indicator", pa.string()),
        ("total", _INT),
        ("maximum_possible", _INT),
        ("classification", pa.string()),
        ("igg4_measured", pa.bool_()),
        ("igg4_ratio", pa.float64()),
        ("exclusions_present", pa.string()),
        ("exclusions_unresolved", pa.string()),
        ("ankylosing_spondylitis", pa.bool_()),
        ("order_after_index", pa.bool_()),
        ("order_date", pa.date32()),
        ("order_actions", pa.string()),
        ("order_indicator", pa.string()),
        ("order_total", _INT),
        ("order_classification", pa.string()),
        ("order_igg4_measured", pa.bool_()),
        ("days_to_resection", _INT),
        ("days_to_chemotherapy", _INT),
        ("resources", _INT),
        ("skipped_resources", _INT),
        ("fixture", pa.string()),
    ]
)
assert tuple(SCHEMA.names) == COLUMNS, "the Parquet schema lists PatientRow's fields in order"


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return f"{value:.3f}"
    return value


class RowWriter:
    """Writes rows to ``patients.csv`` and ``patients.parquet`` in ``folder``; use as a context manager."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.csv_path = folder / "patients.csv"
        self.parquet_path = folder / "patients.parquet"
        self._csv_file: IO[str] = self.csv_path.open("w", newline="", encoding="utf-8")
        self._csv = csv.writer(self._csv_file)
        self._csv.writerow(COLUMNS)
        self._parquet = pq.ParquetWriter(self.parquet_path, SCHEMA)
        self._batch: list[dict[str, Any]] = []
        self.rows = 0

    def write(self, row: PatientRow) -> None:
        """Append one patient."""
        values = row.as_dict()
        self._csv.writerow([_csv_value(values[c]) for c in COLUMNS])
        self._batch.append(values)
        self.rows += 1
        if len(self._batch) >= BATCH_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._batch:
            self._parquet.write_table(pa.Table.from_pylist(self._batch, schema=SCHEMA))
            self._batch = []

    def close(self) -> None:
        """Flush and close both files."""
        self._flush()
        self._parquet.close()
        self._csv_file.close()

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
