"""Pure functions of batch scoring: a file's rows as the API's listings, each row's problems,
and the scored table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import TypeAdapter, ValidationError

from mlops_lab.common.errors import UserError
from mlops_lab.kernel.contract import Listing, probability_column, validation_summary
from mlops_lab.kernel.inside_airbnb import parse_listings
from mlops_lab.kernel.listing import NUMERIC_FIELDS
from mlops_lab.serving.payloads import payloads

LISTING = TypeAdapter(Listing)
CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
# The columns that make a file an Inside Airbnb listings file rather than the API's fields.
INSIDE_AIRBNB_MARKERS = ("neighbourhood_group_cleansed", "amenities")


class ScoringInputError(UserError, ValueError):
    """The file to score, or where to write the scores, cannot be used."""


@dataclass(frozen=True)
class RejectedRow:
    """A row that cannot be scored: where it is in the file, its id, and what is wrong."""

    location: str
    id: Any
    problem: str


def is_inside_airbnb(columns: list[str]) -> bool:
    """Whether a file's columns are an Inside Airbnb listings file's (else the API's fields)."""
    return all(marker in columns for marker in INSIDE_AIRBNB_MARKERS)


def api_fields_of_scrape(raw: pd.DataFrame) -> pd.DataFrame:
    """The API's fields of each raw Inside Airbnb row, its id as the file writes it."""
    parsed = parse_listings(raw).drop(columns=["price"])
    parsed["id"] = raw["id"]
    return parsed


def checked_row(row: dict[str, Any]) -> Listing | str:
    """The row as the API's listing, or what breaks the API's contract in it."""
    try:
        return LISTING.validate_python(row)
    except ValidationError as error:
        return validation_summary(error)


def validate_rows(
    rows: list[dict[str, Any]], locations: list[str]
) -> tuple[list[Listing], list[int], list[RejectedRow]]:
    """The rows that pass the API's schema with their positions, and the others' problems."""
    valid: list[Listing] = []
    positions: list[int] = []
    rejected: list[RejectedRow] = []
    for position, (row, location) in enumerate(zip(rows, locations, strict=True)):
        checked = checked_row(row)
        if isinstance(checked, str):
            rejected.append(RejectedRow(location, row.get("id"), checked))
        else:
            valid.append(checked)
            positions.append(position)
    return valid, positions, rejected


def contract_problems(listings: pd.DataFrame, csv: bool) -> list[str | None]:
    """What breaks the API's contract in each row (a CSV's text read as numbers where it
    reads as one), None where nothing does."""
    rows = payloads(numbers_where_readable(listings) if csv else listings)
    return [checked if isinstance(checked, str) else None for checked in map(checked_row, rows)]


def scored_frame(
    predictions: list[dict[str, Any]],
    locations: list[str],
    categories: list[str],
    model_name: str,
    model_version: str,
) -> pd.DataFrame:
    """One row per scored listing: where it is, its id, category, probabilities and model."""
    return pd.DataFrame(
        {
            "location": locations,
            "id": [str(prediction["id"]) for prediction in predictions],
            "price_category": [prediction["price_category"] for prediction in predictions],
            **{
                probability_column(category): [
                    prediction["probabilities"][category] for prediction in predictions
                ]
                for category in categories
            },
            "model_name": model_name,
            "model_version": model_version,
        }
    )


def rejected_frame(rejected: list[RejectedRow]) -> pd.DataFrame:
    """The rows that could not be scored, where they are and why."""
    return pd.DataFrame(
        {
            "location": [row.location for row in rejected],
            "id": [None if row.id is None else str(row.id) for row in rejected],
            "problem": [row.problem for row in rejected],
        }
    )


def row_locations(count: int, first: int, csv: bool) -> list[str]:
    """Where each of `count` rows is: `line N` of a CSV (its header is line 1), else `row N`."""
    if csv:
        return [f"line {first + index + 2}" for index in range(count)]
    return [f"row {first + index + 1}" for index in range(count)]


def file_kind(path: Path) -> str:
    """The file's kind, csv or parquet, from its name; ScoringInputError for any other."""
    name = path.name.lower()
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    raise ScoringInputError(
        f"{path}: a file to score or a scores file is .csv, .csv.gz or .parquet"
    )


def columns_the_api_ignores(columns: list[str]) -> list[str]:
    """The columns that are no field of the API's listing (the borough goes by two names)."""
    fields = {*Listing.model_fields, "neighbourhood"}
    return [name for name in columns if name not in fields]


def numbers_where_readable(frame: pd.DataFrame) -> pd.DataFrame:
    """A CSV's numeric fields as numbers where they read as one; other text is left for the
    schema to name, so that one bad cell rejects its row, not its column."""
    typed = frame.copy()
    for name in NUMERIC_FIELDS:
        if name in typed.columns:
            numbers = pd.to_numeric(typed[name], errors="coerce")
            typed[name] = typed[name].where(numbers.isna(), numbers).astype(object)
            typed.loc[typed[name].isna(), name] = None
    return typed


def rejected_path(output: Path) -> Path:
    """Where the rows that could not be scored go: beside the output, e.g. scores.rejected.csv."""
    name = output.name
    for suffix in (*CSV_SUFFIXES, *PARQUET_SUFFIXES):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return output.with_name(f"{name}.rejected.csv")
