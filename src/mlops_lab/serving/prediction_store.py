"""Where the service's answers and their feedback are kept: two tables, in the stack's
PostgreSQL or, without one, an embedded SQLite file (as the tracking store)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.schema import CreateIndex, CreateTable

from mlops_lab.common.json_text import json_text
from mlops_lab.common.secrets import with_password

URI_VARIABLE = "PREDICTION_LOG_URI"
PASSWORD_VARIABLE = "PREDICTION_LOG_PASSWORD"
SWITCH_VARIABLE = "PREDICTION_LOG"
# Ids are bounded by the API (contract.ID_MAX_LENGTH); kept as text, whatever type was sent.
ID_LENGTH = 100

# Tries at switching a SQLite store out of WAL (50 ms apart) while other processes open it.
JOURNAL_ATTEMPTS = 100
METADATA = MetaData()
# The PostgreSQL advisory lock that makes the tables one process at a time (any fixed number).
TABLES_LOCK = 0x6D6C6F7073
# An integer key that autoincrements in both PostgreSQL (bigint) and SQLite (integer).
_KEY = BigInteger().with_variant(Integer, "sqlite")

PREDICTIONS = Table(
    "predictions",
    METADATA,
    Column("record_id", _KEY, primary_key=True, autoincrement=True),
    Column("request_id", String(200), nullable=False),
    Column("predicted_at", DateTime(timezone=True), nullable=False, index=True),
    Column("model_name", String(200), nullable=False),
    Column("model_version", String(50), nullable=False),
    Column("listing_id", String(ID_LENGTH), index=True),
    # The listing's fields as the model took them (borough, room_type, …).
    Column("listing", JSON, nullable=False),
    Column("price_category", String(50), nullable=False),
    Column("probabilities", JSON, nullable=False),
    Column("latency_ms", Float, nullable=False),
)

FEEDBACK = Table(
    "feedback",
    METADATA,
    Column("record_id", _KEY, primary_key=True, autoincrement=True),
    Column("request_id", String(200), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("listing_id", String(ID_LENGTH), nullable=False, index=True),
    # The true price when it was sent; the category always (from the price, or as sent).
    Column("price", Float),
    Column("price_category", String(50), nullable=False),
)


# Answers the log could not keep (dropped, rejected, lost), counted where monitoring reads
# them: how many, and when the log knew.
LOSSES = Table(
    "prediction_losses",
    METADATA,
    Column("record_id", _KEY, primary_key=True, autoincrement=True),
    Column("recorded_at", DateTime(timezone=True), nullable=False, index=True),
    Column("outcome", String(20), nullable=False),
    Column("answers", Integer, nullable=False),
)


def prediction_store_uri(
    environment: Mapping[str, str], project_root: Path, embedded_store_path: Path
) -> str:
    """PREDICTION_LOG_URI when set (with PREDICTION_LOG_PASSWORD put in, if set), else the
    embedded SQLite file's URI."""
    uri = environment.get(URI_VARIABLE, "").strip()
    if uri and environment.get(PASSWORD_VARIABLE):
        return with_password(uri, environment[PASSWORD_VARIABLE])
    if uri:
        return uri
    return f"sqlite:///{(project_root / embedded_store_path).resolve()}"


def listing_key(listing_id: object) -> str | None:
    """A listing id as the store keeps it: text, so 42 and "42" are one listing."""
    return None if listing_id is None else str(listing_id)


def store_engine(uri: str, wait_seconds: float | None = None) -> Engine:
    """An engine that survives a database restart, never waits long to connect, and writes
    JSON columns through orjson (the json module took 40% of the prediction log's time). With
    `wait_seconds`, no lock, statement or pooled connection is waited for longer (else SQLite's
    lock is waited for 30 s, and PostgreSQL's statements as long as they take)."""
    if uri.startswith("sqlite"):
        path = Path(uri.removeprefix("sqlite:///"))
        if uri.startswith("sqlite:///") and path.name:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            uri, connect_args={"timeout": wait_seconds or 30.0}, json_serializer=json_text
        )
        # Readers (monitor, /feedback) and the writers wait on each other's short transactions
        # (the busy timeout): WAL would spare that, at the risk of a SIGBUS.
        event.listen(engine, "connect", _rollback_journal)
        return engine
    connect_args: dict[str, Any] = {"connect_timeout": 5} if uri.startswith("postgresql") else {}
    if uri.startswith("postgresql") and wait_seconds is not None:
        milliseconds = round(wait_seconds * 1000)
        connect_args = {
            # libpq waits at least 2 s to connect, whatever it is told.
            "connect_timeout": max(2, round(wait_seconds)),
            "options": f"-c statement_timeout={milliseconds} -c lock_timeout={milliseconds}",
        }
    return create_engine(
        uri,
        pool_pre_ping=True,
        pool_size=2,
        pool_timeout=wait_seconds or 30.0,
        connect_args=connect_args,
        json_serializer=json_text,
    )


def _rollback_journal(connection: Any, _record: Any) -> None:
    """SQLite's rollback journal (its default), not WAL: WAL maps its index file (-shm) into
    every process that opens the store, and a process that touches the map while the file
    cannot be written dies of SIGBUS (measured: the files immutable for 10 s killed both
    workers). A store an earlier version left in WAL is switched back by the first process
    to open it: that takes a lock SQLite does not wait for, so the others try again a while."""
    cursor = connection.cursor()
    try:
        # Waits for a lock as long as the connection's busy timeout, no longer.
        if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            return
        for attempt in range(JOURNAL_ATTEMPTS):
            try:
                cursor.execute("PRAGMA journal_mode=DELETE")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or attempt == JOURNAL_ATTEMPTS - 1:
                    raise
                time.sleep(0.05)
    finally:
        cursor.close()


def create_tables(engine: Engine) -> None:
    """The two tables and their indexes, if they are not there yet, however many processes ask
    at once: each statement is IF NOT EXISTS, in one transaction that PostgreSQL runs under an
    advisory lock (there, two concurrent CREATEs of one table can still collide) and SQLite
    under its write lock."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(select(func.pg_advisory_xact_lock(TABLES_LOCK)))
        for table in METADATA.sorted_tables:
            connection.execute(CreateTable(table, if_not_exists=True))
            for index in sorted(table.indexes, key=lambda index: str(index.name)):
                connection.execute(CreateIndex(index, if_not_exists=True))


def _in_slices(listing_ids: Iterable[str]) -> Iterator[list[str]]:
    """The distinct ids, sorted, in slices: a database caps the parameters of one statement."""
    wanted = sorted(set(listing_ids))
    for start in range(0, len(wanted), 500):
        yield wanted[start : start + 500]


def logged_listing_ids(engine: Engine, listing_ids: Iterable[str]) -> set[str]:
    """Which of these listing ids have a logged prediction."""
    found: set[str] = set()
    column = PREDICTIONS.c.listing_id
    with engine.connect() as connection:
        for ids in _in_slices(listing_ids):
            found.update(connection.scalars(select(column).where(column.in_(ids)).distinct()))
    return found


def _in_range(query: Any, column: Any, since: datetime | None, until: datetime | None) -> Any:
    """The query kept to rows whose `column` is at or after `since` and before `until`."""
    if since is not None:
        query = query.where(column >= since)
    if until is not None:
        query = query.where(column < until)
    return query


def logged_versions(
    engine: Engine, since: datetime | None, until: datetime | None
) -> dict[tuple[str, str], int]:
    """How many predictions each model version made in the time range."""
    columns = (PREDICTIONS.c.model_name, PREDICTIONS.c.model_version)
    query = _in_range(
        select(*columns, func.count()).group_by(*columns),
        PREDICTIONS.c.predicted_at,
        since,
        until,
    )
    with engine.connect() as connection:
        return {(name, version): count for name, version, count in connection.execute(query)}


def logged_losses(engine: Engine, since: datetime | None, until: datetime | None) -> dict[str, int]:
    """How many answers the log could not keep in the time range, by outcome."""
    table = LOSSES.c
    query = _in_range(
        select(table.outcome, func.sum(table.answers)).group_by(table.outcome),
        table.recorded_at,
        since,
        until,
    )
    with engine.connect() as connection:
        return {outcome: int(count) for outcome, count in connection.execute(query)}


def read_predictions(
    engine: Engine,
    model_name: str,
    model_version: str,
    since: datetime | None,
    until: datetime | None,
    last: int,
) -> list[dict[str, Any]]:
    """The most recent `last` predictions of one model version in the time range, oldest
    first: when, which listing, its fields, the category and the probabilities."""
    table = PREDICTIONS.c
    query = _in_range(
        select(
            table.predicted_at,
            table.listing_id,
            table.listing,
            table.price_category,
            table.probabilities,
        )
        .where(table.model_name == model_name, table.model_version == model_version)
        .order_by(table.predicted_at.desc(), table.record_id.desc())
        .limit(last),
        table.predicted_at,
        since,
        until,
    )
    with engine.connect() as connection:
        rows = [dict(row._mapping) for row in connection.execute(query)]
    return rows[::-1]


def latest_feedback(engine: Engine, listing_ids: Iterable[str]) -> dict[str, str]:
    """The true category last sent as feedback for each of these listings that has any."""
    found: dict[str, str] = {}
    table = FEEDBACK.c
    with engine.connect() as connection:
        for ids in _in_slices(listing_ids):
            query = (
                select(table.listing_id, table.price_category)
                .where(table.listing_id.in_(ids))
                .order_by(table.received_at, table.record_id)
            )
            # Later feedback for a listing overwrites earlier: the last word counts.
            found.update((key, category) for key, category in connection.execute(query))
    return found


def labelled_predictions(engine: Engine) -> list[dict[str, Any]]:
    """Every listing that has feedback, once: the fields of its latest prediction as the model
    took them, its latest truth (price, category) and how many truths were sent for it."""
    feedback, predictions = FEEDBACK.c, PREDICTIONS.c
    labelled: dict[str, dict[str, Any]] = {}
    with engine.connect() as connection:
        truths = connection.execute(
            select(feedback.listing_id, feedback.price, feedback.price_category).order_by(
                feedback.received_at, feedback.record_id
            )
        )
        for listing_id, price, category in truths:
            sent = labelled.get(listing_id, {}).get("truths_sent", 0) + 1
            # A later truth for a listing replaces an earlier one: the last word counts.
            labelled[listing_id] = {"price": price, "price_category": category, "truths_sent": sent}
        for ids in _in_slices(labelled):
            query = (
                select(predictions.listing_id, predictions.listing)
                .where(predictions.listing_id.in_(ids))
                .order_by(predictions.predicted_at, predictions.record_id)
            )
            for listing_id, listing in connection.execute(query):
                labelled[listing_id]["listing"] = listing
    return [{"id": listing_id, **truth} for listing_id, truth in labelled.items()]
