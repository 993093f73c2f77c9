import numpy as np
import pandas as pd
import pytest

from mlops_lab.kernel.features import (
    ALL_FEATURES,
    FEATURE_GROUPS,
    FEATURE_INPUTS,
    MIDTOWN_LATITUDE,
    MIDTOWN_LONGITUDE,
    REQUIRED_FEATURES,
    ListingFeatures,
    conform_listings,
    conform_records,
    distance_to_midtown_km,
    engineer_features,
    input_fields,
    positions_along_bearings,
    present_fields,
    property_group,
    resolve_features,
)
from mlops_lab.kernel.listing import MODEL_INPUT_FIELDS, OPTIONAL_FIELDS, REQUIRED_FIELDS


@pytest.mark.parametrize(
    ("property_type", "group"),
    [
        ("Entire rental unit", "apartment"),
        ("Private room in rental unit", "apartment"),
        ("Entire condominium (condo)", "condominium"),
        ("Shared room in loft", "loft"),
        ("Room in boutique hotel", "hotel"),
        ("Private room in townhouse", "house"),
        ("Tiny house", "other"),
        ("Private room", "other"),
        ("", "missing"),
        (None, "missing"),
    ],
)
def test_property_group(property_type, group):
    assert property_group(property_type) == group


def test_distance_to_midtown_is_zero_at_times_square_and_about_15_km_at_jfk():
    distance = distance_to_midtown_km(np.array([40.7580, 40.6413]), np.array([-73.9855, -73.7781]))
    assert distance[0] == pytest.approx(0.0, abs=1e-6)
    assert distance[1] == pytest.approx(21.7, abs=1.0)


def test_positions_along_bearings_of_a_point_one_km_east_of_times_square():
    one_km_east = MIDTOWN_LONGITUDE + 1 / (111.2 * np.cos(np.radians(MIDTOWN_LATITUDE)))
    positions = positions_along_bearings(
        np.array([MIDTOWN_LATITUDE, MIDTOWN_LATITUDE]), np.array([MIDTOWN_LONGITUDE, one_km_east])
    )
    assert [value[0] for value in positions.values()] == pytest.approx([0, 0, 0, 0], abs=1e-9)
    east = [value[1] for value in positions.values()]
    assert east == pytest.approx([np.sqrt(3) / 2, 0.5, -0.5, -np.sqrt(3) / 2])


def test_feature_groups_hold_every_feature_exactly_once():
    grouped = [name for group in FEATURE_GROUPS.values() for name in group]
    assert sorted(grouped) == sorted(ALL_FEATURES)


def test_conform_listings_takes_the_challenge_name_for_borough(challenge_payload):
    conformed = conform_listings(pd.DataFrame([challenge_payload]))
    assert list(conformed) == list(MODEL_INPUT_FIELDS)
    assert conformed["borough"][0] == "Brooklyn"
    assert conformed["property_type"][0] is None
    assert np.isnan(conformed["wifi"][0])
    assert conformed["accommodates"].dtype == float


def test_conform_listings_makes_unreadable_numbers_missing():
    conformed = conform_listings(pd.DataFrame([{"accommodates": "four", "beds": "2"}]))
    assert np.isnan(conformed["accommodates"][0])
    assert conformed["beds"][0] == 2.0


def test_conform_records_agrees_with_conform_listings(listing_sample):
    head = listing_sample.head(50)
    from_records = conform_records(head.to_dict("records"))
    from_frame = conform_listings(head)
    for field in MODEL_INPUT_FIELDS:
        assert from_records[field].dtype == from_frame[field].dtype
        assert pd.Series(from_records[field]).equals(pd.Series(from_frame[field])), field


def test_engineer_features_derives_ratios_missing_on_zero_denominators():
    listings = conform_records([{"accommodates": 4, "bedrooms": 0, "beds": 2, "bathrooms": 1}])
    features = engineer_features(listings)
    assert list(features) == list(ALL_FEATURES)
    assert np.isnan(features["people_per_bedroom"][0])
    assert features["people_per_bed"][0] == 2.0
    assert features["bathrooms_per_person"][0] == 0.25
    assert features["borough"][0] == "missing"
    assert features["property_group"][0] == "missing"


def test_listing_features_rejects_unknown_feature_names():
    with pytest.raises(ValueError, match="unknown features"):
        ListingFeatures(("borough", "sauna")).fit(pd.DataFrame())


def test_resolve_features():
    assert resolve_features("all") == ALL_FEATURES
    assert resolve_features("required") == REQUIRED_FEATURES
    assert resolve_features(["borough", "accommodates"]) == ("borough", "accommodates")


def test_every_feature_names_the_listing_fields_it_comes_from():
    assert set(FEATURE_INPUTS) == set(ALL_FEATURES)
    assert input_fields(ALL_FEATURES) == MODEL_INPUT_FIELDS
    assert input_fields(("people_per_bed", "room_type")) == ("room_type", "accommodates", "beds")


def test_required_features_need_only_the_required_fields_and_take_all_they_give():
    assert set(input_fields(REQUIRED_FEATURES)) == set(REQUIRED_FIELDS)
    left_out = set(ALL_FEATURES) - set(REQUIRED_FEATURES)
    assert left_out == {"property_group", *OPTIONAL_FIELDS} - {"property_type"}


def test_present_fields_tell_absent_values_apart():
    listing = {"room_type": "Private room", "borough": "Queens", "latitude": 40.7}
    present = present_fields(conform_records([listing, {"room_type": "Shared room"}]))
    assert present["room_type"].tolist() == [True, True]
    assert present["borough"].tolist() == [True, False]
    assert present["latitude"].tolist() == [True, False]
    assert present["property_type"].tolist() == [False, False]
