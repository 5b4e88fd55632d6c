import json
from collections import Counter

from cds_service.audit.grouping import PatientGroups
from cds_service.audit.ndjson import ndjson_files


def _write(folder, name, resources):
    (folder / name).write_text("".join(json.dumps(r) + "\n" for r in resources))


def test_every_patient_comes_once_with_all_its_lines_across_many_partitions(tmp_path):
    patients = [{"resourceType": "Patient", "id": f"p{i}"} for i in range(300)]
    observations = [
        {"resourceType": "Observation", "id": f"o{i}-{k}", "subject": {"reference": f"Patient/p{i}"}}
        for i in range(300)
        for k in range(i % 4)
    ]
    _write(tmp_path, "Patient.ndjson", patients)
    _write(tmp_path, "Observation.ndjson", observations)
    _write(tmp_path, "Organization.ndjson", [{"resourceType": "Organization", "id": "org"}])
    (tmp_path / "Broken.ndjson").write_text(
        '{"resourceType": "Observation", "subject": {"reference": "Patient/bad id"}}\n{nope\n'
    )
    work = tmp_path / "work"
    work.mkdir()
    groups = PatientGroups(ndjson_files(tmp_path), work, partition_bytes=4096)
    seen = Counter()
    for patient, lines in groups:
        seen[patient] += 1
        assert len(lines) == 1 + int(patient[1:]) % 4
        assert all(
            json.loads(line).get("subject", {"reference": f"Patient/{patient}"})["reference"]
            == f"Patient/{patient}"
            for line in lines
        )
    assert len(seen) == 300 and set(seen.values()) == {1}
    assert groups.stats.partitions > 1
    assert groups.stats.unattached == 1 and groups.stats.unreadable == 2
    assert groups.stats.resources == len(patients) + len(observations)
    assert list(work.iterdir()) == []  # spill files removed
