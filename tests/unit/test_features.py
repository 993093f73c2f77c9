import numpy as np
import pandas as pd
import pytest
import skops.io

from mlops_lab.features import (
    ALL_FEATURES,
    SKOPS_TRUSTED_TYPES,
    ListingFeatures,
    build_model,
    conform_listings,
    distance_to_midtown_km,
    engineer_features,
    property_group,
    resolve_features,
)
from mlops_lab.listing import MODEL_INPUT_FIELDS

SMALL_ESTIMATORS = {
    "random_forest": {"n_estimators": 5, "random_state": 0},
    "hist_gradient_boosting": {"max_iter": 5, "random_state": 0},
}


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
    distance = distance_to_midtown_km(
        pd.Series([40.7580, 40.6413]), pd.Series([-73.9855, -73.7781])
    )
    assert distance.iloc[0] == pytest.approx(0.0, abs=1e-6)
    assert distance.iloc[1] == pytest.approx(21.7, abs=1.0)


def test_conform_listings_takes_the_challenge_name_for_borough(challenge_payload):
    conformed = conform_listings(pd.DataFrame([challenge_payload]))
    assert list(conformed.columns) == list(MODEL_INPUT_FIELDS)
    assert conformed.loc[0, "borough"] == "Brooklyn"
    assert np.isnan(conformed.loc[0, "wifi"])
    assert conformed["accommodates"].dtype == float


def test_conform_listings_makes_unreadable_numbers_missing():
    conformed = conform_listings(pd.DataFrame([{"accommodates": "four", "beds": "2"}]))
    assert np.isnan(conformed.loc[0, "accommodates"])
    assert conformed.loc[0, "beds"] == 2.0


def test_engineer_features_derives_ratios_missing_on_zero_denominators():
    listings = conform_listings(
        pd.DataFrame([{"accommodates": 4, "bedrooms": 0, "beds": 2, "bathrooms": 1}])
    )
    features = engineer_features(listings)
    assert list(features.columns) == list(ALL_FEATURES)
    assert np.isnan(features.loc[0, "people_per_bedroom"])
    assert features.loc[0, "people_per_bed"] == 2.0
    assert features.loc[0, "bathrooms_per_person"] == 0.25
    assert features.loc[0, "borough"] == "missing"


def test_listing_features_rejects_unknown_feature_names():
    with pytest.raises(ValueError, match="unknown features"):
        ListingFeatures(("borough", "sauna")).fit(pd.DataFrame())


def test_resolve_features():
    assert resolve_features("all") == ALL_FEATURES
    assert resolve_features(["borough", "accommodates"]) == ("borough", "accommodates")


@pytest.mark.parametrize("estimator", sorted(SMALL_ESTIMATORS))
def test_model_predicts_the_challenge_payload_with_fields_missing(
    estimator, listing_sample, challenge_payload
):
    model = build_model(estimator, ALL_FEATURES, SMALL_ESTIMATORS[estimator])
    model.fit(listing_sample, listing_sample["price_category"])
    probabilities = model.predict_proba(pd.DataFrame([challenge_payload]))
    assert probabilities.shape == (1, 4)
    assert probabilities.sum() == pytest.approx(1.0)


def test_skops_trusted_types_are_exactly_what_the_models_need(listing_sample):
    needed: set[str] = set()
    for estimator, params in SMALL_ESTIMATORS.items():
        model = build_model(estimator, ALL_FEATURES, params)
        model.fit(listing_sample, listing_sample["price_category"])
        needed |= set(skops.io.get_untrusted_types(data=skops.io.dumps(model)))
        loaded = skops.io.loads(skops.io.dumps(model), trusted=SKOPS_TRUSTED_TYPES)
        head = listing_sample.head(20)
        assert np.array_equal(loaded.predict_proba(head), model.predict_proba(head))
    assert needed == set(SKOPS_TRUSTED_TYPES)
