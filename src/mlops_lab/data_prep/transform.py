"""Pure functions that turn raw Inside Airbnb listings into the model's training table."""

from __future__ import annotations

import csv
import json
import math
import re

import numpy as np
import pandas as pd

from mlops_lab.kernel.listing import (
    AMENITY_PATTERNS,
    BOROUGHS,
    NYC_LATITUDE_RANGE,
    NYC_LONGITUDE_RANGE,
    ROOM_TYPES,
)


class SchemaError(ValueError):
    """The raw file lacks a column the pipeline needs."""


class DataQualityError(ValueError):
    """The raw listings can be read, but are not fit to train on."""


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


def price_category(prices: pd.Series, edges: list[float], categories: list[str]) -> pd.Series:
    """Each price's category in right-closed bins (edge, next edge]; missing at/below edges[0]."""
    bins = [*edges, math.inf]
    return pd.cut(prices, bins=bins, labels=categories, right=True).astype(object)


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


def drop_reasons(parsed: pd.DataFrame, categories: pd.Series) -> pd.Series:
    """Why each row cannot be used (the first reason that applies), or None when it can."""
    checks = [
        ("id_missing", parsed["id"].isna()),
        ("price_missing_or_unreadable", parsed["price"].isna()),
        ("price_outside_bins", categories.isna() & parsed["price"].notna()),
        ("borough_unknown", ~parsed["borough"].isin(BOROUGHS)),
        ("room_type_unknown", ~parsed["room_type"].isin(ROOM_TYPES)),
        ("accommodates_missing_or_below_one", ~(parsed["accommodates"] >= 1)),
        (
            "count_negative",
            (parsed[["bathrooms", "bedrooms", "beds"]] < 0).any(axis=1),
        ),
        (
            "coordinates_outside_nyc",
            ~parsed["latitude"].between(*NYC_LATITUDE_RANGE)
            | ~parsed["longitude"].between(*NYC_LONGITUDE_RANGE),
        ),
    ]
    reasons = np.select(
        [failed.to_numpy() for _, failed in checks],
        [reason for reason, _ in checks],
        default=None,
    )
    return pd.Series(reasons, index=parsed.index, dtype=object)


def prepare_listings(
    raw: pd.DataFrame, edges: list[float], categories: list[str]
) -> tuple[pd.DataFrame, dict[str, int]]:
    """The training table (raw row order kept) and the number of rows dropped for each reason."""
    parsed = parse_listings(raw)
    parsed["price_category"] = price_category(parsed["price"], edges, categories)
    reasons = drop_reasons(parsed, parsed["price_category"])
    drops = {str(reason): int(count) for reason, count in reasons.value_counts().items()}
    prepared = parsed[reasons.isna()].reset_index(drop=True)
    prepared["id"] = prepared["id"].astype("int64")
    return prepared, dict(sorted(drops.items()))


def sample_listings(listings: pd.DataFrame, rows: int | None, seed: int) -> pd.DataFrame:
    """A seeded sample of `rows` listings in their original order; all of them when rows is None."""
    if rows is None or rows >= len(listings):
        return listings
    return listings.sample(n=rows, random_state=seed).sort_index().reset_index(drop=True)


def summarize(
    rows_in: int, prepared: pd.DataFrame, drops: dict[str, int], categories: list[str]
) -> dict[str, object]:
    """The data_prep metrics: rows in and out, drops by reason, listings per price category."""
    counts = prepared["price_category"].value_counts()
    return {
        "rows_in": rows_in,
        "rows_out": len(prepared),
        "rows_dropped": sum(drops.values()),
        "dropped_by_reason": drops,
        "rows_by_price_category": {name: int(counts.get(name, 0)) for name in categories},
    }


def check_unique_ids(ids: pd.Series) -> None:
    """DataQualityError naming the ids that more than one listing has: copies of a listing
    could land on both sides of the split."""
    repeated = ids[ids.duplicated(keep=False) & ids.notna()]
    if repeated.empty:
        return
    counts = repeated.value_counts()
    shown = ", ".join(f"{int(value)} ({count} times)" for value, count in counts.head(5).items())
    more = f" and {len(counts) - 5} more" if len(counts) > 5 else ""
    raise DataQualityError(f"listing ids must be unique: {shown}{more}")


def check_quality(
    rows_in: int, rows_kept: int, drops: dict[str, int], minimum_rows: int, maximum_share: float
) -> None:
    """DataQualityError when too few listings are left, or too large a share was dropped."""
    if rows_in == 0:
        raise DataQualityError("it has a header but no listings")
    reasons = ", ".join(f"{reason} {count}" for reason, count in drops.items()) or "none"
    dropped = (rows_in - rows_kept) / rows_in
    if dropped > maximum_share:
        raise DataQualityError(
            f"{rows_in - rows_kept} of its {rows_in} rows cannot be used ({dropped:.0%}, more "
            f"than data_prep.maximum_dropped_share {maximum_share:.0%}): {reasons}"
        )
    if rows_kept < minimum_rows:
        raise DataQualityError(
            f"only {rows_kept} usable listings, fewer than data_prep.minimum_rows "
            f"{minimum_rows} (dropped: {reasons})"
        )
