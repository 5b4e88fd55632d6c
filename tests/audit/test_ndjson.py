import gzip

from cds_service.audit.ndjson import iter_lines, ndjson_files, parse_line, patient_of


def test_plain_and_gzip_files_read_the_same_lines(tmp_path):
    text = b'{"resourceType":"Patient","id":"a"}\n\n{"resourceType":"Patient","id":"b"}\n'
    (tmp_path / "Patient.ndjson").write_bytes(text)
    with gzip.open(tmp_path / "Other.ndjson.gz", "wb") as out:
        out.write(text)
    (tmp_path / "notes.txt").write_text("not an export file")
    files = ndjson_files(tmp_path)
    assert [f.name for f in files] == ["Other.ndjson.gz", "Patient.ndjson"]
    assert (
        list(iter_lines(files[0]))
        == list(iter_lines(files[1]))
        == [
            b'{"resourceType":"Patient","id":"a"}',
            b'{"resourceType":"Patient","id":"b"}',
        ]
    )


def test_the_patient_of_a_resource():
    assert patient_of({"resourceType": "Patient", "id": "p1"}) == "p1"
    assert patient_of({"resourceType": "Observation", "subject": {"reference": "Patient/p2"}}) == "p2"
    assert (
        patient_of({"resourceType": "Observation", "subject": {"reference": "http://x/fhir/Patient/p3"}})
        == "p3"
    )
    assert (
        patient_of({"resourceType": "MedicationStatement", "subject": {"reference": "Patient/p4/_history/2"}})
        == "p4"
    )
    assert patient_of({"resourceType": "Coverage", "beneficiary": {"reference": "Patient/p5"}}) == "p5"
    assert patient_of({"resourceType": "Observation", "subject": {"reference": "Group/g"}}) is None
    assert patient_of({"resourceType": "Organization", "id": "o"}) is None


def test_a_broken_line_is_none_not_an_error():
    assert parse_line(b"{broken") is None
    assert parse_line(b"[1, 2]") is None
    assert parse_line(b'{"resourceType":"Patient"}') == {"resourceType": "Patient"}
