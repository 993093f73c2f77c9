"""The compiled model must give the Pipeline's probabilities exactly, on every path."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
from projects import challenge_payload
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from small_models import SMALL_ROUTER

from mlops_lab.evaluation.scores import required_view
from mlops_lab.kernel.decision import row_decision_weights
from mlops_lab.kernel.features import ALL_FEATURES, conform_records
from mlops_lab.kernel.modelling import build_model, predict_sequentially
from mlops_lab.serving.compiled import (
    ROWS_PER_THREAD,
    BoostedTrees,
    CompiledRouter,
    FittedClassifier,
    ForestTrees,
    RowThreads,
    SoftVote,
    UnsupportedModel,
    compile_model,
    row_ranges,
)

NOTEBOOK_FEATURES = ("borough", "room_type", "accommodates", "bathrooms", "bedrooms")


def records(frame: pd.DataFrame) -> list[dict]:
    return frame.to_dict("records")


def test_a_batch_matches_the_pipeline_bit_for_bit(boosted, split):
    _, test = split
    compiled = compile_model(boosted)
    assert len(test) == 500
    assert np.array_equal(compiled.predict_proba(records(test)), boosted.predict_proba(test))


@pytest.mark.parametrize("size", [1, 2, 7, 33, 64])
def test_batches_of_any_size_match(boosted, split, size):
    _, test = split
    compiled = compile_model(boosted)
    for start in range(0, 120, size):
        chunk = test.iloc[start : start + size]
        assert np.array_equal(compiled.predict_proba(records(chunk)), boosted.predict_proba(chunk))


def test_a_decision_step_compiles_to_its_classifiers_probabilities(split):
    train, test = split
    model = build_model(
        "hist_gradient_boosting", ALL_FEATURES, {"max_iter": 20, "random_state": 0}, "macro_f1"
    ).fit(train, train["price_category"])
    compiled = compile_model(model)
    assert np.array_equal(compiled.predict_proba(records(test)), model.predict_proba(test))
    assert np.array_equal(compiled.predict_proba(records(test[:5])), model.predict_proba(test[:5]))


def test_the_compiled_walk_matches_scikit_learns_raw_scores(boosted, split):
    _, test = split
    compiled = compile_model(boosted)
    features = boosted[:-1].transform(test)
    assert np.array_equal(
        compiled.classifier.raw_predictions(features), boosted[-1]._raw_predict(features)
    )


@pytest.mark.parametrize(
    "listing",
    [
        # the challenge's 12 fields and nothing else, as the API hands them to the model
        {
            ("borough" if name == "neighbourhood" else name): value
            for name, value in challenge_payload().items()
            if name != "id"
        },
        # zero bedrooms and beds: ratios missing
        {
            "accommodates": 2,
            "room_type": "Private room",
            "beds": 0,
            "bedrooms": 0,
            "bathrooms": 0.5,
            "borough": "Bronx",
            "tv": 0,
            "elevator": 0,
            "internet": 1,
            "latitude": 40.84,
            "longitude": -73.86,
            "property_type": "Tiny house",
        },
        # a category no training row had, and every optional field given
        {
            "accommodates": 16,
            "room_type": "Hotel room",
            "beds": 12,
            "bedrooms": 8,
            "bathrooms": 6,
            "borough": "Staten Island",
            "tv": 1,
            "elevator": 1,
            "internet": 1,
            "latitude": 40.58,
            "longitude": -74.15,
            "property_type": "Castle",
            "shared_bathroom": 1,
            "air_conditioning": 1,
            "kitchen": 0,
            "heating": 1,
            "wifi": 1,
            "breakfast": 1,
            "amenity_count": 80,
        },
        # nothing at all: every feature missing
        {},
    ],
)
def test_edge_listings_match(boosted, listing):
    compiled = compile_model(boosted)
    assert np.array_equal(
        compiled.predict_proba([listing]), boosted.predict_proba(pd.DataFrame([listing]))
    )


@pytest.mark.parametrize("features", [NOTEBOOK_FEATURES, ALL_FEATURES])
def test_a_forest_matches(split, features):
    train, test = split
    forest = build_model(
        "random_forest",
        features,
        {"n_estimators": 20, "min_samples_leaf": 2, "class_weight": "balanced", "random_state": 0},
    ).fit(train, train["price_category"])
    forest[-1].set_params(n_jobs=1)
    compiled = compile_model(forest)
    assert isinstance(compiled.classifier, ForestTrees)
    for chunk in (test.head(1), test.head(300)):
        assert np.array_equal(compiled.predict_proba(records(chunk)), forest.predict_proba(chunk))


def test_a_model_on_numbers_only_matches(split):
    train, test = split
    model = build_model("random_forest", ("accommodates",), {"n_estimators": 2, "max_depth": 1})
    model.fit(train, train["price_category"])
    assert np.array_equal(
        compile_model(model).predict_proba(records(test)), model.predict_proba(test)
    )


@pytest.fixture(scope="module")
def vote(split):
    """A soft vote of a small gradient boosting and a small forest, with a decision step."""
    train, _ = split
    members = {
        "boosting": {"estimator": "hist_gradient_boosting", "params": {"max_iter": 20}},
        "forest": {"estimator": "random_forest", "params": {"n_estimators": 10, "n_jobs": 1}},
    }
    return build_model("soft_vote", ALL_FEATURES, {"members": members}, "macro_f1").fit(
        train, train["price_category"]
    )


def test_a_soft_vote_of_boosting_and_forest_matches(split, vote):
    _, test = split
    compiled = compile_model(vote)
    assert isinstance(compiled.classifier, SoftVote)
    assert [type(member) for member in compiled.classifier.members] == [BoostedTrees, ForestTrees]
    for chunk in (test.head(1), test.head(7), test):
        assert np.array_equal(compiled.predict_proba(records(chunk)), vote.predict_proba(chunk))


def test_the_parallel_walk_matches_bit_for_bit_on_large_batches(split, vote):
    _, test = split
    # More rows than one block, and a last block that is not full.
    listings = pd.concat([test, test, test.head(37)])
    parallel = compile_model(vote, parallel=True)
    serial = compile_model(vote)
    assert np.array_equal(parallel.predict_proba(records(listings)), vote.predict_proba(listings))
    assert np.array_equal(
        parallel.predict_proba(records(listings)), serial.predict_proba(records(listings))
    )


def test_the_walk_spread_over_the_callers_threads_matches_bit_for_bit(split, vote):
    _, test = split
    listings = pd.concat([test, test.head(37)])
    with ThreadPoolExecutor(2) as pool:
        threaded = compile_model(vote, threads=RowThreads(pool, 3))
        for chunk in (listings.head(1), listings.head(ROWS_PER_THREAD * 2), listings):
            assert np.array_equal(threaded.predict_proba(records(chunk)), vote.predict_proba(chunk))


@pytest.mark.parametrize(
    ("rows", "parts", "ranges"),
    [
        (1, 2, [(0, 1)]),
        (ROWS_PER_THREAD * 2 - 1, 2, [(0, ROWS_PER_THREAD * 2 - 1)]),
        (1000, 2, [(0, 500), (500, 1000)]),
        (1000, 3, [(0, 333), (333, 666), (666, 1000)]),
        (0, 2, [(0, 0)]),
    ],
)
def test_rows_are_cut_into_contiguous_ranges_worth_a_thread(rows, parts, ranges):
    assert row_ranges(rows, parts) == ranges


def test_a_classifier_the_compiler_does_not_know_is_called_on_the_encoded_features(split):
    train, test = split
    model = build_model("random_forest", NOTEBOOK_FEATURES, {})
    model.steps[-1] = ("classifier", KNeighborsClassifier())
    model.fit(train.fillna({"bedrooms": 0}), train["price_category"])
    compiled = compile_model(model)
    assert isinstance(compiled.classifier, FittedClassifier)
    chunk = test.head(50).fillna({"bedrooms": 0})
    assert np.array_equal(compiled.predict_proba(records(chunk)), model.predict_proba(chunk))


def test_an_unknown_pipeline_shape_is_refused():
    with pytest.raises(UnsupportedModel, match="expected 3 steps"):
        compile_model(Pipeline([("scale", StandardScaler())]))
    with pytest.raises(UnsupportedModel, match="a Pipeline or a FieldRouter"):
        compile_model(KNeighborsClassifier())


@pytest.fixture(scope="module")
def router(split):
    train, _ = split
    return predict_sequentially(
        build_model("field_router", (), SMALL_ROUTER).fit(train, train["price_category"])
    )


def test_a_router_matches_on_each_route_and_on_a_mixed_batch(router, split):
    _, test = split
    mixed = test.head(60).copy()
    mixed.loc[mixed.index[::3], "amenity_count"] = np.nan
    compiled = compile_model(router)
    assert isinstance(compiled, CompiledRouter)
    for listings in (test, required_view(test), mixed, mixed.head(1), required_view(mixed.head(1))):
        probabilities, weights = compiled.answer_columns(conform_listings_of(listings))
        assert np.array_equal(probabilities, router.predict_proba(listings))
        assert np.array_equal(weights, row_decision_weights(router, listings))


def conform_listings_of(listings: pd.DataFrame):
    """The listings as the service hands them to the model: absent fields left out."""
    return conform_records(
        [{k: v for k, v in row.items() if not pd.isna(v)} for row in records(listings)]
    )


def test_a_compiled_pipeline_carries_its_decision_weights(split):
    train, test = split
    model = build_model(
        "hist_gradient_boosting", ALL_FEATURES, {"max_iter": 20, "random_state": 0}, "macro_f1"
    ).fit(train, train["price_category"])
    _, weights = compile_model(model).answer_columns(conform_records(records(test.head(4))))
    assert np.array_equal(weights, row_decision_weights(model, test.head(4)))
