"""Scale of ``igg4-cds audit``: patients per second per core and peak memory, 1,000 vs 10,000 patients.

    python benchmarks/audit_scale.py --sizes 15 1000 10000  # the 15 fixtures alone give the fixed cost
    python benchmarks/audit_scale.py --sizes 1000 10000 100000 --workers 2
    python benchmarks/audit_scale.py --grouping-only       # DuckDB vs the external hash partition

Each population is the 15 fixture patients among synthetic ones (``tests/audit/population.py``: 70%
background patients, 30% date-shifted fixture variants), written as plain NDJSON. Each audit runs as its
own ``igg4-cds audit`` process; its wall time and the peak resident memory (the largest process of the
tree, and the tree's sum, sampled every 50 ms with psutil) are recorded. Linear time shows as the
10,000/1,000 time ratio near 10; flat memory as a peak RSS ratio near 1.

The grouping comparison runs each engine alone (no evaluation) in a fresh process over the same files:
``partition`` (``cds_service/audit/grouping.py``) against DuckDB reading the NDJSON with
``read_json_objects`` and streaming ``ORDER BY patient`` with ``fetchmany`` (``memory_limit`` 256 MB by
default, ``--duckdb-memory-mb``; spilling to a temporary directory). DuckDB is only needed here: ``pip install -e '.[bench]'``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _tree_memory(process: psutil.Process) -> tuple[int, int]:
    try:
        procs = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0
    sizes = []
    for proc in procs:
        try:
            sizes.append(proc.memory_info().rss)
        except psutil.NoSuchProcess:
            continue
    return (max(sizes) if sizes else 0), sum(sizes)


def measure(argv: list[str]) -> dict[str, float]:
    """Run ``argv``; wall seconds, peak RSS of the largest process and of the whole tree (MB)."""
    started = time.perf_counter()
    process = psutil.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    peak_one = peak_tree = 0
    while process.poll() is None:
        one, tree = _tree_memory(process)
        peak_one, peak_tree = max(peak_one, one), max(peak_tree, tree)
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    out, err = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"{argv[:4]} failed ({process.returncode}):\n{err.decode()[-2000:]}")
    return {
        "seconds": seconds,
        "peak_mb": peak_one / 2**20,
        "tree_mb": peak_tree / 2**20,
        "stdout": out.decode(),
        "stderr": err.decode(),
    }


def make_population(size: int, folder: Path) -> int:
    from tests.audit.population import generate, write_ndjson

    return write_ndjson(folder, generate(size))


def group_partition(folder: Path) -> None:
    """Grouping alone, with the audit's engine (prints patients and resources)."""
    from cds_service.audit.grouping import PatientGroups
    from cds_service.audit.ndjson import ndjson_files

    patients = lines = 0
    for _, group in PatientGroups(ndjson_files(folder)):
        patients += 1
        lines += len(group)
    print(json.dumps({"patients": patients, "resources": lines}))


DUCKDB_QUERY = """
SELECT CASE WHEN json->>'$.resourceType' = 'Patient' THEN json->>'$.id'
            ELSE regexp_extract(coalesce(json->>'$.subject.reference', json->>'$.patient.reference'),
                                'Patient/([^/]+)', 1) END AS patient,
       CAST(json AS VARCHAR) AS line
FROM read_json_objects(?, format = 'newline_delimited')
ORDER BY patient
"""


def group_duckdb(folder: Path, memory_mb: int = 256) -> None:
    """Grouping alone with DuckDB: ORDER BY patient, streamed in chunks, consecutive lines grouped."""
    import duckdb

    from cds_service.audit.ndjson import ndjson_files

    with tempfile.TemporaryDirectory() as tmp:
        con = duckdb.connect()
        con.execute(f"SET memory_limit = '{memory_mb}MB'")
        con.execute(f"SET temp_directory = '{tmp}'")
        con.execute("SET preserve_insertion_order = false")
        cursor = con.execute(DUCKDB_QUERY, [[str(p) for p in ndjson_files(folder)]])
        patients = lines = 0
        current: str | None = None
        group: list[str] = []
        while rows := cursor.fetchmany(5000):
            for patient, line in rows:
                if not patient:
                    continue
                if patient != current:
                    if group:
                        patients += 1
                    current, group = patient, []
                group.append(line)
                lines += 1
        patients += 1 if group else 0
    print(json.dumps({"patients": patients, "resources": lines}))


def audit_argv(folder: Path, out: Path, workers: int) -> list[str]:
    return [
        str(ROOT / ".venv" / "bin" / "igg4-cds"),
        "audit",
        "--ndjson",
        str(folder),
        "--out",
        str(out),
        "--workers",
        str(workers),
        "--no-progress",
        "--today",
        "2026-11-25",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--grouping-only", action="store_true")
    parser.add_argument("--no-grouping", action="store_true", help="skip the DuckDB comparison")
    parser.add_argument("--duckdb-memory-mb", type=int, default=256, help="DuckDB's memory_limit")
    parser.add_argument("--engine", choices=["partition", "duckdb"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:
        if args.engine == "partition":
            group_partition(args.folder)
        else:
            group_duckdb(args.folder, args.duckdb_memory_mb)
        return
    work = Path(tempfile.mkdtemp(prefix="audit-scale-"))
    try:
        audits: dict[int, dict[str, float]] = {}
        groupings: dict[tuple[str, int], dict[str, float]] = {}
        for size in args.sizes:
            folder = work / f"pop-{size}"
            resources = make_population(size, folder)
            mb = sum(p.stat().st_size for p in folder.iterdir()) / 2**20
            print(f"population {size}: {resources} resources, {mb:.1f} MB NDJSON", flush=True)
            if not args.no_grouping:
                for engine in ("partition", "duckdb"):
                    argv = [sys.executable, __file__, "--engine", engine, "--folder", str(folder)]
                    argv += ["--duckdb-memory-mb", str(args.duckdb_memory_mb)]
                    groupings[engine, size] = measure(argv)
                    g = groupings[engine, size]
                    print(
                        f"  grouping {engine:9s}: {g['seconds']:6.2f} s, peak {g['peak_mb']:6.1f} MB "
                        f"{g['stdout'].strip()}",
                        flush=True,
                    )
            if args.grouping_only:
                continue
            result = measure(audit_argv(folder, work / f"out-{size}", args.workers))
            audits[size] = result
            rate = size / result["seconds"] / args.workers
            print(
                f"  audit, {args.workers} worker(s): {result['seconds']:6.1f} s, {rate:5.1f} patients/s per core, "
                f"peak RSS {result['peak_mb']:.0f} MB (largest process), {result['tree_mb']:.0f} MB (tree)",
                flush=True,
            )
            shutil.rmtree(folder)
        sizes = sorted(audits)
        if sizes and sizes[0] <= 100 and len(sizes) >= 2:
            base = sizes[0]
            print(
                f"\nfixed cost (start-up, imports, report): {audits[base]['seconds']:.1f} s with {base} patients"
            )
            for size in sizes[1:]:
                marginal = (size - base) / (audits[size]["seconds"] - audits[base]["seconds"]) / args.workers
                print(f"  {size}: {marginal:.1f} patients/s per core beyond the fixed cost")
            sizes = sizes[1:]
        if len(sizes) >= 2:
            small, large = sizes[0], sizes[-1]
            print(
                f"\n{large}/{small} patients: time x{audits[large]['seconds'] / audits[small]['seconds']:.1f} "
                f"(linear: x{large / small:.0f}), peak RSS x{audits[large]['peak_mb'] / audits[small]['peak_mb']:.2f} "
                "(flat: x1)"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
