import json
import os

from cds_service.cli import main
from cds_service.fixtures.catalog import FIXTURE_DATE, FIXTURES_DIR

TODAY = FIXTURE_DATE.isoformat()


def test_demo_prints_the_card_of_a_fixture(capsys):
    assert main(["demo", "01", "--today", TODAY]) == 0
    out = capsys.readouterr().out
    assert out.startswith("[WARNING] Consider IgG4-related disease before presuming cholangiocarcinoma")
    assert "Pancreas and biliary tree               19" in out


def test_demo_of_a_request_file_as_json(capsys):
    path = FIXTURES_DIR / "05-tissue-proven-cca" / "request.json"
    assert main(["demo", str(path), "--json", "--today", TODAY]) == 0
    assert json.loads(capsys.readouterr().out) == {"cards": []}


def test_demo_of_an_unreadable_file_fails_cleanly(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["demo", str(bad)]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_demo_without_data_reports_412(tmp_path, capsys):
    request = json.loads((FIXTURES_DIR / "01-published-case" / "request.json").read_text())
    del request["prefetch"]
    path = tmp_path / "r.json"
    path.write_text(json.dumps(request))
    assert main(["demo", str(path)]) == 1
    assert "HTTP 412" in capsys.readouterr().err


def test_delegated_commands_have_help(capsys):
    try:
        main(["load-fixtures", "--help"])
    except SystemExit as exc:
        assert exc.code == 0
    assert "--base-url" in capsys.readouterr().out


def test_demo_takes_a_fixture_number_without_its_leading_zero(capsys):
    assert main(["demo", "7", "--today", "2026-11-25", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cards"][0]["indicator"] == "info"


def test_demo_of_a_missing_file_says_file_not_found(tmp_path, capsys):
    assert main(["demo", str(tmp_path / "request.json")]) == 2
    assert "file not found" in capsys.readouterr().err
    assert main(["demo", "99"]) == 2
    assert "no fixture named '99'" in capsys.readouterr().err


def test_demo_into_a_closed_pipe_ends_without_a_traceback():
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    # The reader is gone before the demo writes (as with `| head` once it has its lines).
    reader, writer = os.pipe()
    os.close(reader)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "cds_service.cli", "demo", "01", "--json"],
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(writer)
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr
    assert done.returncode == 0
