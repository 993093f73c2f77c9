import math

import pandas as pd
import pytest

from mlops_lab.data_prep.transform import (
    DataQualityError,
    SchemaError,
    amenity_flags,
    bathrooms_column,
    check_columns,
    check_quality,
    check_unique_ids,
    drop_reasons,
    is_shared_bathroom,
    parse_amenities,
    parse_bathrooms,
    parse_listings,
    parse_price,
    prepare_listings,
    price_category,
    sample_listings,
    summarize,
)

EDGES = [10, 90, 180, 400]
CATEGORIES = ["low", "mid", "high", "lux"]


def raw_listing(**overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "id": "1",
        "neighbourhood_group_cleansed": "Brooklyn",
        "property_type": "Entire rental unit",
        "room_type": "Entire home/apt",
        "latitude": "40.68",
        "longitude": "-73.95",
        "accommodates": "2",
        "bathrooms": None,
        "bathrooms_text": "1 bath",
        "bedrooms": "1.0",
        "beds": "1.0",
        "amenities": '["TV", "Wifi"]',
        "price": "$75.00",
    }
    row.update(overrides)
    return row


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


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        (10.0, None),
        (10.01, "low"),
        (90.0, "low"),
        (90.01, "mid"),
        (180.0, "mid"),
        (400.0, "high"),
        (400.01, "lux"),
        (12500.0, "lux"),
        (math.nan, None),
    ],
)
def test_price_category_uses_right_closed_bins(price, expected):
    category = price_category(pd.Series([price]), EDGES, CATEGORIES).iloc[0]
    if expected is None:
        assert pd.isna(category)
    else:
        assert category == expected


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


def test_drop_reasons_name_the_first_problem_of_each_row():
    raw = pd.DataFrame(
        [
            raw_listing(),
            raw_listing(price="$10.00"),
            raw_listing(price=""),
            raw_listing(neighbourhood_group_cleansed="Atlantis"),
            raw_listing(room_type="Castle"),
            raw_listing(accommodates="0"),
            raw_listing(beds="-1"),
            raw_listing(latitude="48.85", longitude="2.35"),
            raw_listing(id=""),
        ]
    )
    parsed = parse_listings(raw)
    reasons = drop_reasons(parsed, price_category(parsed["price"], EDGES, CATEGORIES))
    assert reasons.tolist() == [
        None,
        "price_outside_bins",
        "price_missing_or_unreadable",
        "borough_unknown",
        "room_type_unknown",
        "accommodates_missing_or_below_one",
        "count_negative",
        "coordinates_outside_nyc",
        "id_missing",
    ]


def test_prepare_listings_keeps_order_and_counts_drops():
    raw = pd.DataFrame(
        [
            raw_listing(id="1", price="$1,250.00"),
            raw_listing(id="2", price="$10.00"),
            raw_listing(id="3", price="$90.00"),
        ]
    )
    prepared, drops = prepare_listings(raw, EDGES, CATEGORIES)
    assert prepared["id"].tolist() == [1, 3]
    assert prepared["price_category"].tolist() == ["lux", "low"]
    assert drops == {"price_outside_bins": 1}


def test_sample_listings_is_seeded_and_keeps_order():
    listings = pd.DataFrame({"id": range(100)})
    first = sample_listings(listings, 10, seed=1)
    assert first.equals(sample_listings(listings, 10, seed=1))
    assert first["id"].is_monotonic_increasing
    assert len(first) == 10
    assert sample_listings(listings, None, seed=1) is listings


def test_summarize_counts_rows_and_categories():
    prepared = pd.DataFrame({"price_category": ["low", "low", "lux"]})
    summary = summarize(5, prepared, {"price_outside_bins": 2}, CATEGORIES)
    assert summary == {
        "rows_in": 5,
        "rows_out": 3,
        "rows_dropped": 2,
        "dropped_by_reason": {"price_outside_bins": 2},
        "rows_by_price_category": {"low": 2, "mid": 0, "high": 0, "lux": 1},
    }


def test_repeated_ids_are_named_with_their_counts():
    check_unique_ids(pd.Series([1, 2, 3, None, None], dtype=float))
    with pytest.raises(DataQualityError, match=r"listing ids must be unique: 2 \(3 times\)"):
        check_unique_ids(pd.Series([1, 2, 2, 2, 3]))


@pytest.mark.parametrize(
    ("rows_in", "kept", "message"),
    [
        (0, 0, "a header but no listings"),
        (400, 100, r"300 of its 400 rows cannot be used \(75%"),
        (150, 90, "only 90 usable listings, fewer than data_prep.minimum_rows 100"),
    ],
)
def test_a_file_that_leaves_too_little_is_refused(rows_in, kept, message):
    with pytest.raises(DataQualityError, match=message):
        check_quality(rows_in, kept, {"price_missing_or_unreadable": rows_in - kept}, 100, 0.5)
    check_quality(1000, 900, {"borough_unknown": 100}, 100, 0.5)
