"""Pure functions of harvest: logged predictions with their feedback → labelled listings."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pandas as pd
from pydantic import ValidationError

from mlops_lab.evaluation.prepared import HARVESTED_COLUMNS
from mlops_lab.kernel.contract import Listing
from mlops_lab.kernel.prices import price_category


def listing_number(listing_id: str) -> int | None:
    """The id as an Inside Airbnb listing number, or None when it is not one."""
    text = listing_id.strip()
    return int(text) if text.isdigit() and 0 < len(text) <= 18 else None


def truth_category(row: dict[str, Any], edges: list[float], categories: list[str]) -> str | None:
    """The true category: from the price sent (binned as data_prep bins), else as sent; None
    when the price falls in no bin or the category is not one of ours."""
    if row["price"] is not None:
        binned = price_category(pd.Series([float(row["price"])]), edges, categories).iloc[0]
        return None if pd.isna(binned) else str(binned)
    return row["price_category"] if row["price_category"] in categories else None


def drop_reason(row: dict[str, Any], category: str | None) -> str | None:
    """Why a labelled prediction, whose true category is this, cannot be a training listing,
    or None when it can."""
    if row.get("listing") is None:
        return "prediction_not_logged"
    if listing_number(row["id"]) is None:
        return "id_not_a_listing_number"
    try:
        Listing.model_validate(row["listing"])
    except ValidationError:
        return "refused_by_the_api"
    if category is None:
        return "price_impossible" if row["price"] is not None else "category_unknown"
    return None


def labelled_listings(
    rows: list[dict[str, Any]], edges: list[float], categories: list[str]
) -> tuple[pd.DataFrame, dict[str, int]]:
    """One labelled listing per id, in id order, and how many were dropped for each reason
    (and how many earlier truths a later one replaced, as `truth_replaced`)."""
    kept: list[dict[str, Any]] = []
    counts: Counter[str] = Counter()
    for row in rows:
        counts["truth_replaced"] += row["truths_sent"] - 1
        category = truth_category(row, edges, categories)
        reason = drop_reason(row, category)
        if reason is not None:
            counts[reason] += 1
            continue
        kept.append(
            {
                **row["listing"],
                "id": listing_number(row["id"]),
                "price": float("nan") if row["price"] is None else float(row["price"]),
                "price_category": category,
            }
        )
    table = pd.DataFrame(kept, columns=HARVESTED_COLUMNS).sort_values("id", kind="stable")
    table["id"] = table["id"].astype("int64")
    return table.reset_index(drop=True), {reason: n for reason, n in sorted(counts.items()) if n}
