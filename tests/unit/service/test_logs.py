import json
import logging
import sys

from mlops_lab.service.logs import JsonFormatter


def record(message: str, **extra) -> logging.LogRecord:
    made = logging.LogRecord("mlops_lab.service", logging.ERROR, __file__, 1, message, (), None)
    made.__dict__.update(extra)
    return made


def test_a_record_is_one_line_of_json_with_its_extra_fields():
    line = JsonFormatter().format(record("request", request_id="abc", status=200))
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["level"] == "ERROR" and parsed["message"] == "request"
    assert parsed["request_id"] == "abc" and parsed["status"] == 200
    assert parsed["time"].endswith("+00:00")


def test_a_traceback_is_one_field():
    try:
        raise ValueError("bad model")
    except ValueError:
        failing = record("model not loaded")
        failing.exc_info = sys.exc_info()
    parsed = json.loads(JsonFormatter().format(failing))
    assert "ValueError: bad model" in parsed["exception"]


def test_any_value_is_written_even_what_orjson_refuses():
    line = JsonFormatter().format(record("request", listing_id=2**70, model_uri=object))
    parsed = json.loads(line)
    assert parsed["listing_id"] == 2**70
    assert parsed["model_uri"] == str(object)
