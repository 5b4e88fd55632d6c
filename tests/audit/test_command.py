"""``igg4-cds audit --ndjson`` end to end on a generated population: outputs, pseudonyms, the hook's cards."""

from __future__ import annotations

import csv
import hashlib
import hmac

import pyarrow.parquet as pq
import pytest

from cds_service.audit.outputs import COLUMNS
from cds_service.cli import main
from tests.audit.cards import EVALUATION_DATE, mismatches
from tests.audit.conftest import POPULATION
from tests.audit.population import FIXTURES, fixture_ids


def _audit(export_dir, out, *extra):
    argv = [
        "audit",
        "--ndjson",
        str(export_dir),
        "--out",
        str(out),
        "--mark-fixtures",
        str(FIXTURES),
        "--today",
        EVALUATION_DATE,
        "--no-progress",
        *extra,
    ]
    assert main(argv) == 0


@pytest.fixture(scope="module")
def as_of_run(export_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("audit-as-of")
    _audit(export_dir, out, "--keep-ids", "--as-of", EVALUATION_DATE, "--workers", "2", "--progress")
    return out


def test_the_audit_gives_every_fixture_the_card_of_its_hook(as_of_run):
    assert mismatches(as_of_run / "patients.csv", as_of=True) == []


def test_order_cards_match_the_hook_at_each_patients_own_index_date(export_dir, tmp_path):
    _audit(export_dir, tmp_path, "--keep-ids", "--workers", "1")
    assert mismatches(tmp_path / "patients.csv", as_of=False) == []


def test_outputs_hold_one_row_per_patient_with_the_columns(as_of_run):
    with (as_of_run / "patients.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == POPULATION
    assert tuple(rows[0]) == COLUMNS
    for column in ("patient", "index_date", "indicator", "total", "classification", "igg4_measured"):
        assert column in COLUMNS
    assert {r["indicator"] for r in rows} <= {"warning", "info", "none"}
    table = pq.read_table(as_of_run / "patients.parquet")
    assert table.num_rows == POPULATION and tuple(table.column_names) == COLUMNS
    marked = {r["patient"]: r["fixture"] for r in rows if r["fixture"]}
    assert marked == fixture_ids()


def test_ids_are_hmac_pseudonyms_unless_kept(export_dir, tmp_path, monkeypatch):
    key = "an-audit-key-of-enough-length"
    monkeypatch.setenv("IGG4_CDS_AUDIT_HASH_KEY", key)
    _audit(export_dir, tmp_path, "--as-of", EVALUATION_DATE, "--workers", "1")
    with (tmp_path / "patients.csv").open(newline="") as handle:
        rows = {r["fixture"]: r["patient"] for r in csv.DictReader(handle) if r["fixture"]}
    expected = hmac.new(key.encode(), b"patient:f01-patient", hashlib.sha256).hexdigest()
    assert rows["01-published-case"] == expected
    text = (tmp_path / "patients.csv").read_text() + (tmp_path / "report.html").read_text()
    assert "f01-patient" not in text and "Patient/" not in text


def test_an_empty_folder_is_an_error(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    assert main(["audit", "--ndjson", str(tmp_path / "in"), "--out", str(tmp_path / "out")]) == 1
    assert "no NDJSON files" in capsys.readouterr().err
