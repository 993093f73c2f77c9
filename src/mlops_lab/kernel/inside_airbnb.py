"""Inside Airbnb's listings files: reading them and parsing their columns into the model's
input fields. data_prep builds the training table from them, and `mlops-lab score` reads the
listings it scores from them."""

from __future__ import annotations

import csv
import gzip
import json
import math
import re
import zlib
from collections.abc import Callable
from gzip import BadGzipFile
from pathlib import Path

import numpy as np
import pandas as pd

from mlops_lab.common.errors import UserError
from mlops_lab.kernel.listing import AMENITY_PATTERNS


class SchemaError(UserError, ValueError):
    """The raw file lacks a column the pipeline needs."""


class RawDataError(UserError, ValueError):
    """The raw listings file is missing, empty or not a CSV."""


# The raw columns the pipeline reads, named as in every Inside Airbnb listings.csv.
REQUIRED_COLUMNS = (
    "id",
    "neighbourhood_group_cleansed",
    "property_type",
    "room_type",
    "latitude",
    "longitude",
    "accommodates",
    "bedrooms",
    "beds",
    "amenities",
    "price",
)
# Recent scrapes leave `bathrooms` empty and fill `bathrooms_text`; older ones have `bathrooms`.
BATHROOM_COLUMNS = ("bathrooms_text", "bathrooms")

_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_HALF_BATH = re.compile(r"\bhalf[- ]bath", re.IGNORECASE)
_AMENITY_REGEXES = {flag: re.compile(p, re.IGNORECASE) for flag, p in AMENITY_PATTERNS.items()}


def check_columns(columns: list[str]) -> None:
    """Raise SchemaError naming every required raw column that is absent."""
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if not any(name in columns for name in BATHROOM_COLUMNS):
        missing.append(" or ".join(BATHROOM_COLUMNS))
    if missing:
        raise SchemaError(
            f"missing column{'s' if len(missing) > 1 else ''}: {', '.join(missing)} "
            f"(found {len(columns)} columns: {', '.join(map(str, columns[:20]))}"
            f"{', …' if len(columns) > 20 else ''})"
        )


def parse_price(text: object) -> float:
    """A price like '$1,250.00' as 1250.0; missing or unreadable as NaN."""
    if not isinstance(text, str):
        return math.nan
    cleaned = text.strip().replace("$", "").replace(",", "")
    try:
        return float(cleaned)
    except ValueError:
        return math.nan


def parse_bathrooms(text: object) -> float:
    """The bathroom count in texts like '1.5 baths', 'Half-bath', '2 shared baths'; else NaN."""
    if not isinstance(text, str) or not text.strip():
        return math.nan
    number = _NUMBER.search(text)
    if number:
        return float(number.group())
    if _HALF_BATH.search(text):
        return 0.5
    return math.nan


def is_shared_bathroom(text: object) -> float:
    """1.0 when the bathroom text says it is shared, 0.0 when not, NaN when there is no text."""
    if not isinstance(text, str) or not text.strip():
        return math.nan
    return 1.0 if "shared" in text.lower() else 0.0


def parse_amenities(text: object) -> list[str]:
    """The amenity names in '["TV", "Wifi"]' (current scrapes) or '{TV,"Air conditioning"}'."""
    if not isinstance(text, str) or not text.strip():
        return []
    text = text.strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, list):
            return [str(item).strip() for item in parsed if str(item).strip()]
    inner = text.strip("{}[]")
    return [item.strip() for item in next(csv.reader([inner])) if item.strip()]


def amenity_flags(amenities: list[str]) -> dict[str, int]:
    """1 for every amenity flag the model knows that the list mentions, else 0."""
    return {
        flag: int(any(regex.search(amenity) for amenity in amenities))
        for flag, regex in _AMENITY_REGEXES.items()
    }


def bathrooms_column(raw: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Bathroom count and shared flag, from bathrooms_text where present, else `bathrooms`."""
    text = raw["bathrooms_text"] if "bathrooms_text" in raw else pd.Series(np.nan, index=raw.index)
    count = text.map(parse_bathrooms).astype(float)
    if "bathrooms" in raw:
        count = count.fillna(pd.to_numeric(raw["bathrooms"], errors="coerce"))
    return count, text.map(is_shared_bathroom).astype(float)


def parse_listings(raw: pd.DataFrame) -> pd.DataFrame:
    """Typed model input fields and price, one row per raw row, nothing dropped yet."""
    amenities = raw["amenities"].map(parse_amenities)
    flags = pd.DataFrame(list(amenities.map(amenity_flags)), index=raw.index)
    bathrooms, shared_bathroom = bathrooms_column(raw)
    parsed = pd.DataFrame(
        {
            "id": pd.to_numeric(raw["id"], errors="coerce"),
            "borough": raw["neighbourhood_group_cleansed"].astype(object),
            "room_type": raw["room_type"].astype(object),
            "property_type": raw["property_type"].astype(object),
            "accommodates": pd.to_numeric(raw["accommodates"], errors="coerce"),
            "bathrooms": bathrooms,
            "shared_bathroom": shared_bathroom,
            "bedrooms": pd.to_numeric(raw["bedrooms"], errors="coerce"),
            "beds": pd.to_numeric(raw["beds"], errors="coerce"),
            "latitude": pd.to_numeric(raw["latitude"], errors="coerce"),
            "longitude": pd.to_numeric(raw["longitude"], errors="coerce"),
        },
        index=raw.index,
    )
    parsed = parsed.join(flags.astype(float))
    parsed["amenity_count"] = amenities.map(len).astype(float)
    parsed["price"] = raw["price"].map(parse_price).astype(float)
    return parsed


def _looks_binary(path: Path) -> bool:
    """Whether the file's first 8 KiB (decompressed if .gz) hold a NUL byte, as no CSV does."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as stream:
        return b"\x00" in stream.read(8192)


def require_raw_file(path: Path) -> None:
    """Raise RawDataError naming the raw data file when it is not there."""
    if not path.is_file():
        raise RawDataError(f"raw data file {path} does not exist")


def read_listings_csv(
    path: Path, name: str, columns_to_read: Callable[[list[str]], list[str] | None]
) -> pd.DataFrame:
    """The cells of a listings CSV (optionally gzipped) as text, empty ones missing: the columns
    `columns_to_read` picks from its header (None: all). RawDataError, naming the file as
    `name`, when it is absent, empty or no readable CSV."""
    if not path.is_file():
        raise RawDataError(f"{name} does not exist")
    try:
        if _looks_binary(path):
            raise RawDataError(f"{name} is not a readable CSV: it holds binary data")
        header = pd.read_csv(path, nrows=0)
        columns = columns_to_read(list(header.columns))
        return pd.read_csv(path, usecols=columns, dtype=str, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError as error:
        raise RawDataError(f"{name} is empty") from error
    except EOFError as error:
        raise RawDataError(
            f"{name} is truncated: its compressed data ends early (copied or downloaded in part?)"
        ) from error
    except (
        pd.errors.ParserError,
        UnicodeDecodeError,
        BadGzipFile,
        zlib.error,
    ) as error:
        raise RawDataError(f"{name} is not a readable CSV: {error}") from error


def raw_columns_to_read(path: Path, header: list[str]) -> list[str]:
    """The raw columns the pipeline needs, of an Inside Airbnb file with this header;
    SchemaError naming the file and every one it lacks."""
    try:
        check_columns(header)
    except SchemaError as error:
        raise SchemaError(f"raw data file {path}: {error}") from error
    return [*REQUIRED_COLUMNS, *(c for c in BATHROOM_COLUMNS if c in header)]


def read_raw_listings(path: Path) -> pd.DataFrame:
    """The raw columns the pipeline needs, as text, from a listings CSV (optionally gzipped)."""
    return read_listings_csv(
        path, f"raw data file {path}", lambda header: raw_columns_to_read(path, header)
    )
