"""Where the service's answers and their feedback are kept: two tables, in the stack's
PostgreSQL or, without one, an embedded SQLite file (as the tracking store)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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
    select,
)

from mlops_lab.kernel.secrets import with_password

URI_VARIABLE = "PREDICTION_LOG_URI"
PASSWORD_VARIABLE = "PREDICTION_LOG_PASSWORD"
SWITCH_VARIABLE = "PREDICTION_LOG"
# Ids are bounded by the API (schema.ID_MAX_LENGTH); kept as text, whatever type was sent.
ID_LENGTH = 100

METADATA = MetaData()
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


def store_engine(uri: str) -> Engine:
    """An engine that survives a database restart and never waits long to connect."""
    if uri.startswith("sqlite"):
        path = Path(uri.removeprefix("sqlite:///"))
        if uri.startswith("sqlite:///") and path.name:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(uri, connect_args={"timeout": 30})
        # WAL: the workers write while `mlops-lab monitor` reads, without locking each other out.
        event.listen(engine, "connect", _write_ahead_log)
        return engine
    connect_args = {"connect_timeout": 5} if uri.startswith("postgresql") else {}
    return create_engine(uri, pool_pre_ping=True, pool_size=2, connect_args=connect_args)


def _write_ahead_log(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def create_tables(engine: Engine) -> None:
    """The two tables, if they are not there yet."""
    METADATA.create_all(engine, checkfirst=True)


def logged_listing_ids(engine: Engine, listing_ids: Iterable[str]) -> set[str]:
    """Which of these listing ids have a logged prediction."""
    wanted = sorted(set(listing_ids))
    found: set[str] = set()
    with engine.connect() as connection:
        # In slices: a database caps the parameters of one statement.
        for start in range(0, len(wanted), 500):
            column = PREDICTIONS.c.listing_id
            query = select(column).where(column.in_(wanted[start : start + 500])).distinct()
            found.update(connection.scalars(query))
    return found
