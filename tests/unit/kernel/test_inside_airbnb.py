import math

import pandas as pd
import pytest
from raw_listings import raw_listing

from mlops_lab.kernel.inside_airbnb import (
    SchemaError,
    amenity_flags,
    bathrooms_column,
    check_columns,
    is_shared_bathroom,
    parse_amenities,
    parse_bathrooms,
    parse_listings,
    parse_price,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$75.00", 75.0),
        ("$1,250.00", 1250.0),
        ("$10,000.00", 10000.0),
        (" $90.01 ", 90.01),
        ("", math.nan),
        (None, math.nan),
        ("free", math.nan),
    ],
)
def test_parse_price(text, expected):
    assert parse_price(text) == pytest.approx(expected, nan_ok=True)


@pytest.mark.parametrize(
    ("text", "count", "shared"),
    [
        ("1 bath", 1.0, 0.0),
        ("1.5 baths", 1.5, 0.0),
        ("Half-bath", 0.5, 0.0),
        ("Shared half-bath", 0.5, 1.0),
        ("Private half-bath", 0.5, 0.0),
        ("1 private bath", 1.0, 0.0),
        ("2 shared baths", 2.0, 1.0),
        ("0 baths", 0.0, 0.0),
        ("", math.nan, math.nan),
        (None, math.nan, math.nan),
    ],
)
def test_parse_bathrooms_and_shared_flag(text, count, shared):
    assert parse_bathrooms(text) == pytest.approx(count, nan_ok=True)
    assert is_shared_bathroom(text) == pytest.approx(shared, nan_ok=True)


def test_bathrooms_column_falls_back_to_numeric_column_of_older_scrapes():
    raw = pd.DataFrame({"bathrooms": ["2.0", None]})
    count, shared = bathrooms_column(raw)
    assert count.iloc[0] == 2.0
    assert math.isnan(count.iloc[1])
    assert shared.isna().all()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('["TV", "Air conditioning", "Wifi"]', ["TV", "Air conditioning", "Wifi"]),
        ('{TV,"Air conditioning",Wifi}', ["TV", "Air conditioning", "Wifi"]),
        ('{TV,"Cable TV","Family/kid friendly"}', ["TV", "Cable TV", "Family/kid friendly"]),
        ("[]", []),
        ("{}", []),
        ("", []),
        (None, []),
    ],
)
def test_parse_amenities_reads_both_formats(text, expected):
    assert parse_amenities(text) == expected


def test_amenity_flags_match_full_scrape_wordings():
    flags = amenity_flags(
        ["HDTV with Netflix", "Wifi – 300 Mbps", "Central air conditioning", "Elevator"]
    )
    assert flags["tv"] == 1
    assert flags["wifi"] == 1
    assert flags["air_conditioning"] == 1
    assert flags["elevator"] == 1
    assert flags["internet"] == 0
    assert flags["breakfast"] == 0


def test_amenity_flags_of_nothing_are_all_zero():
    assert set(amenity_flags([]).values()) == {0}


def test_check_columns_names_every_missing_column():
    columns = list(raw_listing())
    columns.remove("price")
    columns.remove("amenities")
    with pytest.raises(SchemaError, match=r"missing columns: amenities, price"):
        check_columns(columns)


def test_check_columns_needs_one_of_the_bathroom_columns():
    columns = [c for c in raw_listing() if c not in ("bathrooms", "bathrooms_text")]
    with pytest.raises(SchemaError, match="bathrooms_text or bathrooms"):
        check_columns(columns)


def test_check_columns_accepts_extra_columns_of_a_full_scrape():
    check_columns([*raw_listing(), "description", "host_id", "review_scores_rating"])


def test_parse_listings_types_every_field():
    parsed = parse_listings(pd.DataFrame([raw_listing(bedrooms=None)]))
    row = parsed.iloc[0]
    assert row["price"] == 75.0
    assert row["bathrooms"] == 1.0
    assert math.isnan(row["bedrooms"])
    assert row["tv"] == 1.0 and row["wifi"] == 1.0 and row["kitchen"] == 0.0
    assert row["amenity_count"] == 2.0
