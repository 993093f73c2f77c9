"""Pure functions of replay: which listings to send, shifted or not, and in what batches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from mlops_lab.common.errors import UserError
from mlops_lab.kernel.listing import BOROUGH_ALIAS, MODEL_INPUT_FIELDS


class ReplayError(UserError, ValueError):
    """Replay cannot go on: a bad option, or the service refused or could not be reached."""


@dataclass(frozen=True)
class Condition:
    """Keep only listings whose field has this value (`--where borough=Manhattan`)."""

    field: str
    value: str


def parse_conditions(texts: tuple[str, ...]) -> list[Condition]:
    """Each FIELD=VALUE as a condition; ReplayError naming a malformed one or an unknown field."""
    conditions = []
    for text in texts:
        field, equals, value = text.partition("=")
        field = "borough" if field.strip() == BOROUGH_ALIAS else field.strip()
        if not equals or not field:
            raise ReplayError(f"--where {text!r}: write FIELD=VALUE, e.g. borough=Manhattan")
        if field not in MODEL_INPUT_FIELDS:
            raise ReplayError(
                f"--where {text!r}: {field!r} is not a listing field "
                f"({', '.join(MODEL_INPUT_FIELDS)})"
            )
        conditions.append(Condition(field, value.strip()))
    return conditions


def matches(column: pd.Series, value: str) -> pd.Series:
    """Where the column holds the value: as a number for a numeric column, else as text."""
    if pd.api.types.is_numeric_dtype(column):
        try:
            return column == float(value)
        except ValueError as error:
            raise ReplayError(f"{column.name} is a number: {value!r} is not") from error
    return column.astype(str) == value


def shifted(listings: pd.DataFrame, conditions: list[Condition]) -> pd.DataFrame:
    """The listings that meet every condition; ReplayError when none does."""
    kept = listings
    for condition in conditions:
        kept = kept[matches(kept[condition.field], condition.value)]
    if kept.empty:
        wanted = " and ".join(f"{c.field}={c.value}" for c in conditions)
        raise ReplayError(f"no listing has {wanted}")
    return kept


def sampled(listings: pd.DataFrame, limit: int | None, seed: int) -> pd.DataFrame:
    """At most `limit` listings, a seeded sample; all of them when there is no limit."""
    if limit is None or limit >= len(listings):
        return listings
    return listings.sample(n=limit, random_state=seed)


def batches(items: list[Any], size: int) -> list[list[Any]]:
    """The items in consecutive batches of at most `size`."""
    return [items[start : start + size] for start in range(0, len(items), size)]


def feedback_records(listings: pd.DataFrame, price_factor: float = 1.0) -> list[dict[str, Any]]:
    """Each listing's true price times `price_factor` (a market that moved), as /feedback
    takes it."""
    return [
        {"id": int(listing_id), "price": round(float(price) * price_factor, 2)}
        for listing_id, price in zip(listings["id"], listings["price"], strict=True)
    ]
