"""Pure functions that turn raw Inside Airbnb listings into the model's training table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlops_lab.common.errors import UserError
from mlops_lab.evaluation.prepared import (
    FROM_FEEDBACK,
    FROM_RAW,
    FROM_RAW_PRICE_FROM_FEEDBACK,
    SOURCE,
)
from mlops_lab.kernel.inside_airbnb import parse_listings
from mlops_lab.kernel.listing import (
    BOROUGHS,
    NYC_LATITUDE_RANGE,
    NYC_LONGITUDE_RANGE,
    ROOM_TYPES,
)
from mlops_lab.kernel.prices import price_category


class DataQualityError(UserError, ValueError):
    """The raw listings can be read, but are not fit to train on."""


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


def with_harvested(prepared: pd.DataFrame, harvested: pd.DataFrame) -> pd.DataFrame:
    """The prepared listings and the harvested ones: a listing the raw file has takes the
    price and category its feedback gives; one it lacks is added. `source` says which is
    which: raw, raw_price_from_feedback or feedback."""
    listings = prepared.assign(**{SOURCE: FROM_RAW})
    truths = harvested.set_index("id")
    known = listings["id"].isin(truths.index)
    for column in ("price", "price_category"):
        listings.loc[known, column] = listings.loc[known, "id"].map(truths[column])
    listings.loc[known, SOURCE] = FROM_RAW_PRICE_FROM_FEEDBACK
    added = harvested[~harvested["id"].isin(listings["id"])].assign(**{SOURCE: FROM_FEEDBACK})
    if added.empty:
        return listings
    return pd.concat([listings, added.reindex(columns=listings.columns)], ignore_index=True)


def summarize(
    rows_in: int, prepared: pd.DataFrame, drops: dict[str, int], categories: list[str]
) -> dict[str, object]:
    """The data_prep metrics: rows in and out, drops by reason, listings per price category."""
    counts = prepared["price_category"].value_counts()
    sources = prepared[SOURCE].value_counts()
    return {
        "rows_in": rows_in,
        "rows_out": len(prepared),
        "rows_dropped": sum(drops.values()),
        "dropped_by_reason": drops,
        "rows_by_price_category": {name: int(counts.get(name, 0)) for name in categories},
        "rows_by_source": {str(source): int(count) for source, count in sources.items()},
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
