"""The prediction log: every answer the service gives, kept in the prediction store. A request
only puts its answers in a bounded buffer; a background thread writes them in batches, so no
request waits on the database, and a full buffer drops (and counts) instead of blocking."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import Counter
from sqlalchemy import Engine, insert
from sqlalchemy.exc import SQLAlchemyError

from mlops_lab.kernel.prediction_store import PREDICTIONS, create_tables, listing_key
from mlops_lab.service.threads import leave_signals_to_the_main_thread

log = logging.getLogger("mlops_lab.service")

# How often the writer looks for new records while it gathers a batch.
POLL_SECONDS = 0.05


@dataclass(frozen=True)
class PredictionLogSettings:
    """Where the log writes and how it batches (config.yaml monitoring.prediction_log)."""

    store_uri: str
    buffer_size: int = 20_000
    batch_size: int = 500
    flush_seconds: float = 0.5
    retry_seconds: float = 2.0
    # At shutdown, how long the writer gets to write what is buffered.
    close_seconds: float = 10.0


@dataclass(frozen=True)
class AnsweredRequest:
    """One request's answers, as the request hands them to the log."""

    request_id: str
    predicted_at: datetime
    model_name: str
    model_version: str
    latency_ms: float
    inputs: list[dict[str, Any]]
    predictions: list[dict[str, Any]]


def prediction_rows(answered: AnsweredRequest) -> list[dict[str, Any]]:
    """The request's rows of the predictions table, one per listing."""
    return [
        {
            "request_id": answered.request_id,
            "predicted_at": answered.predicted_at,
            "model_name": answered.model_name,
            "model_version": answered.model_version,
            "listing_id": listing_key(prediction["id"]),
            "listing": listing,
            "price_category": prediction["price_category"],
            "probabilities": prediction["probabilities"],
            "latency_ms": answered.latency_ms,
        }
        for listing, prediction in zip(answered.inputs, answered.predictions, strict=True)
    ]


class PredictionLog:
    """A bounded buffer of answered requests and the thread that writes them."""

    def __init__(self, engine: Engine, settings: PredictionLogSettings, records: Counter):
        self.engine = engine
        self.settings = settings
        self._written = records.labels("written")
        self._dropped = records.labels("dropped")
        self._buffer: deque[AnsweredRequest] = deque()
        self._lock = threading.Condition()
        self._buffered = 0
        # Records handed over and records written or dropped since start: flush() waits for
        # the second to catch up with the first.
        self._accepted = 0
        self._settled = 0
        self._hurry = threading.Event()
        self._closing = threading.Event()
        self._tables_ready = False
        self._failing = False
        # Not a daemon: when the process's main thread ends (the server has answered its last
        # request), Python waits for this thread, which then writes what is buffered and stops.
        self._writer = threading.Thread(target=self._run, name="prediction-log")
        self._writer.start()

    def record(self, answered: AnsweredRequest) -> None:
        """Buffer a request's answers, or drop and count them when the buffer is full."""
        size = len(answered.predictions)
        with self._lock:
            if self._closing.is_set() or self._buffered + size > self.settings.buffer_size:
                self._dropped.inc(size)
                return
            self._buffer.append(answered)
            self._buffered += size
            self._accepted += size

    def flush(self, timeout: float) -> bool:
        """Wait until what was buffered before this call is written (or dropped)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            target = self._accepted
            self._hurry.set()
            while self._settled < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._lock.wait(remaining):
                    return self._settled >= target
            return True

    def ensure_tables(self) -> None:
        """The store's tables, made by the first call that reaches the store, then never
        asked for again."""
        if not self._tables_ready:
            create_tables(self.engine)
            self._tables_ready = True

    def close(self) -> None:
        """Write what is buffered (within close_seconds), then stop; what is left is dropped
        and counted."""
        self._closing.set()
        self._writer.join(self.settings.close_seconds)

    def _stopping(self) -> bool:
        """Whether to write what is left and stop: close() was called, or the process's main
        thread has ended."""
        return self._closing.is_set() or not threading.main_thread().is_alive()

    def _run(self) -> None:
        leave_signals_to_the_main_thread()
        try:
            self._write_until_stopped()
        finally:
            self._count_left()

    def _count_left(self) -> None:
        """Drop and count what was not written: the store could not take it at shutdown."""
        with self._lock:
            self._closing.set()
            left, self._buffered = self._buffered, 0
            self._buffer.clear()
        if left:
            log.error("prediction log: %d records not written at shutdown", left)
            self._dropped.inc(left)

    def _write_until_stopped(self) -> None:
        # The tables at once, so that `mlops-lab monitor` finds them before any prediction;
        # if the store cannot be reached yet, the first write tries again.
        self._write([])
        batch: list[AnsweredRequest] = []
        while True:
            batch += self._gather(batch)
            if batch:
                if self._write(batch):
                    self._settle(batch)
                    batch = []
                elif self._stopping():
                    # The store cannot be reached and the service is stopping: what is left,
                    # this batch included, is counted as dropped (_count_left).
                    with self._lock:
                        self._buffered += sum(len(item.predictions) for item in batch)
                    return
                else:
                    self._closing.wait(self.settings.retry_seconds)
            elif self._stopping():
                return

    def _gather(self, batch: list[AnsweredRequest]) -> list[AnsweredRequest]:
        """Requests from the buffer: a batch's worth, or what came within flush_seconds."""
        taken: list[AnsweredRequest] = []
        size = sum(len(item.predictions) for item in batch)
        deadline = time.monotonic() + self.settings.flush_seconds
        while size < self.settings.batch_size:
            with self._lock:
                if self._buffer:
                    item = self._buffer.popleft()
                    self._buffered -= len(item.predictions)
                    taken.append(item)
                    size += len(item.predictions)
                    continue
            urgent = self._hurry.is_set() or self._stopping()
            if urgent or time.monotonic() >= deadline:
                self._hurry.clear()
                break
            time.sleep(POLL_SECONDS)
        return taken

    def _write(self, batch: list[AnsweredRequest]) -> bool:
        """Write the batch in one transaction; False (logged once per outage) if the store
        cannot take it."""
        rows = [row for answered in batch for row in prediction_rows(answered)]
        try:
            self.ensure_tables()
            if rows:
                with self.engine.begin() as connection:
                    connection.execute(insert(PREDICTIONS), rows)
        except SQLAlchemyError as error:
            if not self._failing:
                log.warning(
                    "prediction log: cannot write to the store, keeping %d records and "
                    "retrying every %g s: %s",
                    len(rows),
                    self.settings.retry_seconds,
                    error.__class__.__name__ + ": " + str(error).splitlines()[0],
                )
            self._failing = True
            return False
        if self._failing:
            log.info("prediction log: writing again")
            self._failing = False
        return True

    def _settle(self, batch: list[AnsweredRequest]) -> None:
        size = sum(len(item.predictions) for item in batch)
        self._written.inc(size)
        with self._lock:
            self._settled += size
            self._lock.notify_all()
