"""The prediction log's store as the tests read it and break it: what was written, straight from
the table, and the store out of reach."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from services import PostgresCluster
from sqlalchemy import create_engine, func, select
from waiting import read_until

from mlops_lab.service.prediction_log import AnsweredRequest
from mlops_lab.serving.prediction_store import PREDICTIONS, create_tables


def logged_ids(uri: str, prefix: str = "") -> list[str]:
    """The listing id of every logged prediction whose id starts with `prefix`, a row each:
    an id written twice is here twice."""
    engine = create_engine(uri)
    try:
        create_tables(engine)
        with engine.connect() as connection:
            column = PREDICTIONS.c.listing_id
            return list(connection.scalars(select(column).where(column.like(f"{prefix}%"))))
    finally:
        engine.dispose()


def wait_for_logged(uri: str, prefix: str, count: int = 1) -> list[str]:
    """The ids logged under `prefix` once there are at least `count` of them."""
    return read_until(
        lambda: logged_ids(uri, prefix),
        lambda ids: len(ids) >= count,
        60,
        f"{count} records of {prefix}* in the log",
    )


def logged_count(uri: str) -> int:
    """How many predictions the store holds."""
    engine = create_engine(uri)
    try:
        create_tables(engine)
        with engine.connect() as connection:
            return connection.scalar(select(func.count()).select_from(PREDICTIONS))
    finally:
        engine.dispose()


@contextmanager
def store_out_of_reach(store: dict, cluster: PostgresCluster) -> Iterator[None]:
    """SQLite under an exclusive lock (readers and writers wait), or PostgreSQL stopped, while
    the block runs."""
    if store["kind"] == "sqlite":
        connection = sqlite3.connect(store["uri"].removeprefix("sqlite:///"), timeout=60)
        connection.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            connection.rollback()
            connection.close()
    else:
        cluster.stop()
        try:
            yield
        finally:
            cluster.start()


def answered_request(listing_ids: list[str]) -> AnsweredRequest:
    """A request the service answered, one listing an id, as the log's writer takes it."""
    return AnsweredRequest(
        request_id="request-1",
        predicted_at=datetime.now(UTC),
        model_name="airbnb-price-category",
        model_version="3",
        latency_ms=1.5,
        inputs=[{"accommodates": 2, "borough": "Bronx"}] * len(listing_ids),
        predictions=[
            {"id": listing_id, "price_category": "low", "probabilities": {"low": 1.0}}
            for listing_id in listing_ids
        ],
    )
