"""The prediction log's buffer and writer, on a real SQLite store."""

import sqlite3
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy import Engine, create_engine, func, select
from stores import answered_request
from waiting import poll_until, read_until

from mlops_lab.service.prediction_log import (
    AnsweredRequest,
    LogMetrics,
    PredictionLog,
    PredictionLogSettings,
    prediction_rows,
)
from mlops_lab.serving.prediction_store import PREDICTIONS, logged_losses, store_engine


def answered(listings: int, prefix: str = "listing") -> AnsweredRequest:
    return answered_request([f"{prefix}-{n}" for n in range(listings)])


def records() -> Counter:
    return Counter("records", "records", ["outcome"], registry=CollectorRegistry())


def writer_log(
    engine: Engine, settings: PredictionLogSettings, counter: Counter, running: Gauge | None = None
) -> PredictionLog:
    registry = CollectorRegistry()
    metrics = LogMetrics(
        answers=Counter("answers", "answers", registry=registry),
        records=counter,
        writers=running or Gauge("running", "running", registry=registry),
    )
    return PredictionLog(engine, settings, metrics)


def counted(counter: Counter, outcome: str) -> float:
    return counter.labels(outcome)._value.get()


def rows_in(log: PredictionLog) -> int:
    with log.engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(PREDICTIONS))


@pytest.fixture()
def store_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'predictions.db'}"


def test_a_request_becomes_one_row_per_listing_keyed_by_its_id_as_text():
    request = answered(2)
    request.predictions[1]["id"] = 42
    rows = prediction_rows(request)
    assert [row["listing_id"] for row in rows] == ["listing-0", "42"]
    assert rows[0]["listing"] == {"accommodates": 2, "borough": "Bronx"}
    assert rows[0]["model_version"] == "3" and rows[0]["price_category"] == "low"


def test_flush_writes_what_was_buffered(store_uri):
    counter = records()
    log = writer_log(store_engine(store_uri), PredictionLogSettings(store_uri), counter)
    for _ in range(3):
        log.record(answered(400))
    assert log.flush(timeout=10)
    assert rows_in(log) == 1200
    assert counted(counter, "written") == 1200
    log.close()


def test_a_full_buffer_drops_and_counts_instead_of_waiting(tmp_path):
    # A store that cannot be opened: its folder is a file.
    (tmp_path / "not-a-folder").write_text("")
    uri = f"sqlite:///{tmp_path / 'not-a-folder' / 'predictions.db'}"
    settings = PredictionLogSettings(uri, buffer_size=1000, retry_seconds=0.1, close_seconds=1)
    counter = records()
    log = writer_log(store_engine_unchecked(uri), settings, counter)
    for _ in range(5):
        log.record(answered(400))
    assert counted(counter, "dropped") >= 400
    assert not log.flush(timeout=0.5)
    log.close()
    # What was buffered when the service stopped is counted as dropped, not lost unseen.
    assert counted(counter, "dropped") == 2000
    assert counted(counter, "written") == 0


def test_after_close_records_are_dropped_and_counted(store_uri):
    counter = records()
    log = writer_log(store_engine(store_uri), PredictionLogSettings(store_uri), counter)
    log.record(answered(10))
    log.close()
    assert counted(counter, "written") == 10
    log.record(answered(5))
    assert counted(counter, "dropped") == 5


def store_engine_unchecked(uri: str) -> Engine:
    """An engine for a SQLite path whose folder cannot be made."""
    return create_engine(uri)


def test_a_record_the_store_refuses_is_set_aside_and_counted_and_the_rest_written(store_uri):
    counter = records()
    log = writer_log(store_engine(store_uri), PredictionLogSettings(store_uri), counter)
    refused = answered(1, prefix="refused")
    # A lone surrogate: no UTF-8 for it, so the store's driver refuses the row.
    refused.inputs[0] = {"property_type": "\ud800"}
    log.record(answered(300, prefix="before"))
    log.record(refused)
    log.record(answered(300, prefix="after"))
    assert log.flush(timeout=10)
    assert (counted(counter, "written"), counted(counter, "rejected")) == (600, 1)
    assert rows_in(log) == 600
    # The loss is in the store too, for `mlops-lab monitor`.
    read_until(
        lambda: logged_losses(log.engine, None, None),
        lambda losses: losses == {"rejected": 1},
        10,
        "the rejected record counted in the store",
    )
    log.record(answered(5))
    assert log.flush(timeout=10) and rows_in(log) == 605
    log.close()


def test_a_writer_that_stops_says_why_and_what_it_dropped(store_uri):
    counter = records()
    running = Gauge("running", "running", registry=CollectorRegistry())
    log = writer_log(store_engine(store_uri), PredictionLogSettings(store_uri), counter, running)
    assert log.flush(timeout=10) and running._value.get() == 1
    broken = answered(3)
    broken.predictions[1].pop("price_category")  # a defect of ours, not a caller's value
    log.record(broken)
    failure = poll_until(lambda: log.failure, 10, "the writer to say why it stopped")
    assert "KeyError" in failure
    log.close()
    assert running._value.get() == 0
    assert counted(counter, "dropped") == 3
    log.record(answered(2))
    assert counted(counter, "dropped") == 5


def test_a_store_left_in_wal_gets_the_rollback_journal_back(store_uri):
    # WAL maps its index into every process: a worker touching it while the file cannot be
    # written dies of SIGBUS (tests/integration/test_prediction_log_faults.py).
    path = store_uri.removeprefix("sqlite:///")
    legacy = sqlite3.connect(path)
    assert legacy.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    legacy.close()
    engine = store_engine(store_uri)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "delete"
    engine.dispose()
