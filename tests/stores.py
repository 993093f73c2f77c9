"""The prediction log's store as the tests read it: what was written, straight from the table."""

from __future__ import annotations

from sqlalchemy import create_engine, func, select

from mlops_lab.kernel.prediction_store import PREDICTIONS, create_tables


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


def logged_count(uri: str) -> int:
    """How many predictions the store holds."""
    engine = create_engine(uri)
    try:
        create_tables(engine)
        with engine.connect() as connection:
            return connection.scalar(select(func.count()).select_from(PREDICTIONS))
    finally:
        engine.dispose()
