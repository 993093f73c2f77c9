import pandas as pd
import pytest
from raw_listings import raw_listing

from mlops_lab.kernel.inside_airbnb import parse_listings
from mlops_lab.kernel.prices import price_category
from mlops_lab.stages.data_prep.transform import (
    DataQualityError,
    check_quality,
    check_unique_ids,
    drop_reasons,
    prepare_listings,
    sample_listings,
    summarize,
    with_harvested,
)

EDGES = [10, 90, 180, 400]
CATEGORIES = ["low", "mid", "high", "lux"]


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
    prepared = pd.DataFrame(
        {"price_category": ["low", "low", "lux"], "source": ["raw", "raw", "feedback"]}
    )
    summary = summarize(5, prepared, {"price_outside_bins": 2}, CATEGORIES)
    assert summary == {
        "rows_in": 5,
        "rows_out": 3,
        "rows_dropped": 2,
        "dropped_by_reason": {"price_outside_bins": 2},
        "rows_by_price_category": {"low": 2, "mid": 0, "high": 0, "lux": 1},
        "rows_by_source": {"raw": 2, "feedback": 1},
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


def test_harvested_listings_update_known_ones_and_add_new_ones():
    raw = pd.DataFrame([raw_listing(id=1, price="$50.00"), raw_listing(id=2, price="$60.00")])
    prepared, _ = prepare_listings(raw, EDGES, CATEGORIES)
    new = prepared.iloc[[0]].assign(id=99, price=500.0, price_category="lux")
    known = prepared.iloc[[1]].assign(price=150.0, price_category="mid")
    merged = with_harvested(prepared, pd.concat([known, new]))
    assert list(merged["id"]) == [1, 2, 99]
    assert list(merged["price_category"]) == ["low", "mid", "lux"]
    assert list(merged["source"]) == ["raw", "raw_price_from_feedback", "feedback"]
    assert merged.dtypes["id"] == "int64" and merged.loc[2, "borough"] == prepared.loc[0, "borough"]


def test_without_harvested_listings_every_listing_is_the_raw_files():
    raw = pd.DataFrame([raw_listing(id=1, price="$50.00")])
    prepared, _ = prepare_listings(raw, EDGES, CATEGORIES)
    empty = pd.DataFrame(columns=["id", "price", "price_category"]).astype({"id": "int64"})
    merged = with_harvested(prepared, empty)
    assert merged.drop(columns="source").equals(prepared) and list(merged["source"]) == ["raw"]
