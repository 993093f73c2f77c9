"""The prediction log: every answer the service gives, kept in the prediction store. A request
only puts its answers in a bounded buffer; a background thread writes them in batches, so no
request waits on the database, and a full buffer drops (and counts) instead of blocking."""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter, Gauge
from sqlalchemy import Engine, insert
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from mlops_lab.service.threads import leave_signals_to_the_main_thread
from mlops_lab.serving.feedback_token import FeedbackToken
from mlops_lab.serving.prediction_store import LOSSES, PREDICTIONS, create_tables, listing_key

log = logging.getLogger("mlops_lab.service")

# What a write raises when the store cannot be reached, is locked or cannot be written just
# now: the rows wait and are tried again. Anything else is the store refusing a record.
UNREACHABLE = (OperationalError, InterfaceError, PoolTimeoutError)
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
    feedback_wait_seconds: float = 1.0
    # The bearer token /feedback takes (serving/feedback_token.py); without one, /feedback is
    # refused to everyone.
    feedback_token: FeedbackToken | None = None
    # At shutdown, how long the writer gets to write what is buffered.
    close_seconds: float = 10.0


@dataclass(frozen=True)
class LogMetrics:
    """What the log counts: every answer handed to it, the outcome of each (written, rejected,
    dropped; lost is counted for dead workers, service/metrics.py), and whether its writer
    runs."""

    answers: Counter
    records: Counter
    writers: Gauge
    # Counts (as lost) what workers that died held, once each; returns how many.
    count_dead_workers_losses: Callable[[], float] = lambda: 0.0


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

    def __init__(
        self,
        engine: Engine,
        settings: PredictionLogSettings,
        metrics: LogMetrics,
    ):
        self.engine = engine
        self.settings = settings
        self.metrics = metrics
        # Losses counted in /metrics and not yet in the store's losses table.
        self._unrecorded_losses: collections.Counter[str] = collections.Counter()
        self._answers = metrics.answers
        self._written = metrics.records.labels("written")
        self._dropped = metrics.records.labels("dropped")
        self._rejected = metrics.records.labels("rejected")
        self._running = metrics.writers
        # Why the writer stopped, if it did: /ready reports it.
        self.failure: str | None = None
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
            self._answers.inc(size)
            if self._closing.is_set() or self._buffered + size > self.settings.buffer_size:
                self._dropped.inc(size)
                self._unrecorded_losses["dropped"] += size
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

    def ensure_tables(self, engine: Engine | None = None) -> None:
        """The store's tables, made by the first call that reaches the store (through
        `engine`, the log's own by default), then never asked for again."""
        if not self._tables_ready:
            create_tables(engine or self.engine)
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
        self._running.set(1)
        try:
            self._write_until_stopped()
        except Exception as error:
            # A defect of ours: said where it shows (/ready, /metrics, the log), not hidden.
            self.failure = (
                f"the prediction log's writer stopped: {error.__class__.__name__}: {error}"
            )
            log.exception("prediction log: the writer stopped")
        finally:
            self._running.set(0)
            self._count_left()

    def _count_left(self) -> None:
        """Drop and count what was not written, buffered or in the writer's hands: the store
        could not take it at shutdown, or the writer stopped."""
        with self._lock:
            self._closing.set()
            left = self._accepted - self._settled
            self._buffered = 0
            self._buffer.clear()
        if left:
            log.error("prediction log: %d records not written at shutdown", left)
            self._settle(left, self._dropped)

    def _write_until_stopped(self) -> None:
        # The tables at once, so that `mlops-lab monitor` finds them before any prediction;
        # if the store cannot be reached yet, the first write tries again.
        self._store([])
        pending: list[dict[str, Any]] = []
        while True:
            pending += [row for item in self._gather(len(pending)) for row in prediction_rows(item)]
            if pending:
                pending = self._store(pending)
            if not pending:
                self._store_losses()
            if pending and self._stopping():
                # The store cannot be reached and the service is stopping: what is left, these
                # rows included, is counted as dropped (_count_left).
                return
            if pending:
                self._closing.wait(self.settings.retry_seconds)
            elif self._stopping() and self._quiet(self.settings.flush_seconds):
                return

    def _quiet(self, seconds: float) -> bool:
        """Whether nothing came into the buffer for `seconds`. granian ends a worker's main
        thread while its request threads still finish what they hold: their answers come in
        after the stop, and are written before the writer stops."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self._lock:
                if self._buffer:
                    return False
            time.sleep(POLL_SECONDS)
        return True

    def _gather(self, size: int) -> list[AnsweredRequest]:
        """Requests from the buffer: up to a batch's worth of rows beyond the `size` pending, or
        what came within flush_seconds."""
        taken: list[AnsweredRequest] = []
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

    def _store(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Write the rows in one transaction; return those to try again later, as the store
        cannot take them now. A row the store refuses is set aside and counted, and the rows
        around it are written: the batch is tried again in halves."""
        try:
            self.ensure_tables()
        except SQLAlchemyError as error:
            self._unreachable(error, len(rows))
            return rows
        try:
            if rows:
                with self.engine.begin() as connection:
                    connection.execute(insert(PREDICTIONS), rows)
        except UNREACHABLE as error:
            self._unreachable(error, len(rows))
            return rows
        except Exception as error:  # the store or its driver refused a value in these rows
            if len(rows) == 1:
                self._reject(rows[0], error)
                return []
            middle = len(rows) // 2
            left = self._store(rows[:middle])
            return left + rows[middle:] if left else self._store(rows[middle:])
        if self._failing:
            log.info("prediction log: writing again")
            self._failing = False
        self._settle(len(rows), self._written)
        return []

    def _unreachable(self, error: Exception, size: int) -> None:
        """Log the first failure of an outage; open new connections for the next try (SQLite
        opens a file it cannot write read-only, and stays so)."""
        if not self._failing:
            log.warning(
                "prediction log: cannot write to the store, keeping %d records and retrying "
                "every %g s: %s",
                size,
                self.settings.retry_seconds,
                error.__class__.__name__ + ": " + str(error).splitlines()[0],
            )
        self._failing = True
        self.engine.dispose()

    def _store_losses(self) -> None:
        """Put in the store, for `mlops-lab monitor`, the losses not yet there: dropped,
        rejected, and what dead workers held (counted here, by whichever worker sees it
        first). What the store cannot take now waits for the next try."""
        lost = self.metrics.count_dead_workers_losses()
        with self._lock:
            self._unrecorded_losses["lost"] += lost
            taken = {outcome: count for outcome, count in self._unrecorded_losses.items() if count}
        if not taken:
            return
        now = datetime.now(UTC)
        rows = [
            {"recorded_at": now, "outcome": outcome, "answers": round(count)}
            for outcome, count in taken.items()
        ]
        try:
            with self.engine.begin() as connection:
                connection.execute(insert(LOSSES), rows)
        except SQLAlchemyError as error:
            self._unreachable(error, 0)
            return
        with self._lock:
            self._unrecorded_losses.subtract(taken)

    def _reject(self, row: dict[str, Any], error: Exception) -> None:
        log.error(
            "prediction log: the store refused a record; set aside: %s",
            error.__class__.__name__ + ": " + (str(error).splitlines() or [""])[0][:500],
            extra={"request_id": row["request_id"], "listing_id": repr(row["listing_id"])[:120]},
        )
        with self._lock:
            self._unrecorded_losses["rejected"] += 1
        self._settle(1, self._rejected)

    def _settle(self, size: int, outcome: Any) -> None:
        outcome.inc(size)
        with self._lock:
            self._settled += size
            self._lock.notify_all()
