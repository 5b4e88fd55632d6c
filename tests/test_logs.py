import io
import json
import logging
from decimal import Decimal

from cds_service.logs import JsonLineFormatter


def _line(logger_name: str, emit) -> dict:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLineFormatter())
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
    [text] = stream.getvalue().splitlines()
    return json.loads(text)


def test_a_record_is_one_json_line_with_its_extras():
    extra = {"service": "s", "cards": 1, "timings_ms": {"parse": 0.1}, "indicators": ["warning"]}
    line = _line("t.logs.extra", lambda log: log.info("hook call", extra=extra))
    assert list(line)[:4] == ["asctime", "levelname", "name", "message"]
    assert line["levelname"] == "INFO" and line["name"] == "t.logs.extra"
    assert line["message"] == "hook call"
    assert {k: line[k] for k in extra} == extra
    assert not {"pathname", "lineno", "args", "msg", "process", "thread"} & set(line)


def test_values_json_lacks_are_written_as_text_and_exceptions_as_their_traceback():
    def emit(log: logging.Logger) -> None:
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed %s", "here", extra={"amount": Decimal("1.5")})

    line = _line("t.logs.exc", emit)
    assert line["message"] == "failed here"
    assert line["amount"] == "1.5"
    assert "ValueError: boom" in line["exc_info"]
