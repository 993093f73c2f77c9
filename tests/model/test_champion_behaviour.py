"""Behaviour of the champion, in the manner of Made-With-ML's tests/model: invariance,
directional expectations and minimum functionality.

The champion is the candidate `metrics/training.json` names as the pipeline's winner, fitted
as training fits it (the notebook's training part of the shipped data), and served through
the same compiled path as the service. The tests read its probabilities, so the candidate's
probability model is fitted without its decision step (which only relabels; see
tests/unit/test_decision.py)."""

import json

import numpy as np
import pandas as pd
import pytest

from mlops_lab.kernel.compiled import CompiledModel, compile_model
from mlops_lab.kernel.config import CandidateConfig
from mlops_lab.kernel.features import resolve_features
from mlops_lab.kernel.listing import MODEL_INPUT_FIELDS, REQUIRED_FIELDS
from mlops_lab.kernel.modelling import build_model
from mlops_lab.kernel.prepared import Split, split_like_notebook

CATEGORIES = ["low", "mid", "high", "lux"]
# Representative points: the Grand Concourse in the Bronx, Midtown Manhattan.
BRONX = {"borough": "Bronx", "latitude": 40.8270, "longitude": -73.9230}
MANHATTAN = {"borough": "Manhattan", "latitude": 40.7549, "longitude": -73.9840}


@pytest.fixture(scope="module")
def split(lab_config, prepared_listings) -> Split:
    return split_like_notebook(
        prepared_listings, lab_config.training.test_size, lab_config.training.split_random_state
    )


def probability_model(candidate: CandidateConfig):
    """The candidate's model with every decision step left out: it only relabels."""
    if candidate.estimator != "field_router":
        return build_model(
            candidate.estimator, resolve_features(candidate.features), candidate.params
        )
    members = {
        name: {**member, "decision": "most_probable"}
        for name, member in candidate.params["members"].items()
    }
    return build_model("field_router", (), {"members": members})


@pytest.fixture(scope="module")
def champion(lab_config, split, project_root) -> CompiledModel:
    winner = json.loads((project_root / lab_config.training.metrics_path).read_text())["winner"]
    candidate = next(c for c in lab_config.training.candidates if c.name == winner)
    model = probability_model(candidate)
    return compile_model(model.fit(split.train_features, split.train_target))


# Both the listings callers mostly send (the required fields) and complete listings.
@pytest.fixture(scope="module", params=["required", "full"])
def held_out(split, request) -> list[dict]:
    """400 listings of the notebook's test part, as API-level fields."""
    sample = split.test_features.sample(400, random_state=3)
    kept = REQUIRED_FIELDS if request.param == "required" else MODEL_INPUT_FIELDS
    return [
        {key: value for key, value in row.items() if key in kept and not pd.isna(value)}
        for row in sample.to_dict("records")
    ]


def probabilities(champion: CompiledModel, listings: list[dict]) -> np.ndarray:
    order = [list(champion.classes).index(name) for name in CATEGORIES]
    return champion.predict_proba(listings)[:, order]


def expected_category(champion: CompiledModel, listings: list[dict]) -> np.ndarray:
    """0 for low … 3 for lux, weighted by the probabilities: a price level per listing."""
    return probabilities(champion, listings) @ np.arange(len(CATEGORIES))


def category(champion: CompiledModel, listing: dict) -> str:
    return CATEGORIES[int(np.argmax(probabilities(champion, [listing])[0]))]


# Invariance: what must not matter


def test_the_listing_id_never_changes_a_prediction(champion, held_out):
    renumbered = [{**listing, "id": 10**9 + n} for n, listing in enumerate(held_out)]
    assert np.array_equal(probabilities(champion, held_out), probabilities(champion, renumbered))


def test_batch_neighbours_never_change_a_prediction(champion, held_out):
    alone = np.vstack([probabilities(champion, [listing]) for listing in held_out[:50]])
    assert np.array_equal(alone, probabilities(champion, held_out[:50]))


# Directional: what must move the price one way, on average over real listings


def test_moving_a_listing_from_the_bronx_to_manhattan_does_not_lower_its_price(champion, held_out):
    in_bronx = [{**listing, **BRONX} for listing in held_out]
    in_manhattan = [{**listing, **MANHATTAN} for listing in held_out]
    difference = expected_category(champion, in_manhattan) - expected_category(champion, in_bronx)
    # Measured: +0.83 on average, and no listing cheaper in Manhattan.
    assert difference.mean() > 0.5
    assert (difference >= 0).mean() > 0.95


def test_another_bedroom_and_two_more_guests_do_not_lower_the_price(champion, held_out):
    bigger = [
        {
            **listing,
            "bedrooms": listing["bedrooms"] + 1,
            "beds": listing["beds"] + 1,
            "accommodates": listing["accommodates"] + 2,
        }
        for listing in held_out
        if "bedrooms" in listing and "beds" in listing
    ]
    smaller = [listing for listing in held_out if "bedrooms" in listing and "beds" in listing]
    difference = expected_category(champion, bigger) - expected_category(champion, smaller)
    # Measured: +0.53 on average, and 98% of listings not cheaper.
    assert difference.mean() > 0.25
    assert (difference >= 0).mean() > 0.9


def test_an_entire_home_is_not_cheaper_than_a_shared_room_in_it(champion, held_out):
    entire = [{**listing, "room_type": "Entire home/apt"} for listing in held_out]
    shared = [{**listing, "room_type": "Shared room"} for listing in held_out]
    difference = expected_category(champion, entire) - expected_category(champion, shared)
    # Measured: +0.39 on average, and 85% of listings not cheaper.
    assert difference.mean() > 0.2
    assert (difference >= 0).mean() > 0.75


# Minimum functionality: cases with obvious answers


BASE = {"tv": 0, "elevator": 0, "internet": 1, "bathrooms": 1}


@pytest.mark.parametrize(
    ("listing", "allowed"),
    [
        (
            {**BASE, **BRONX, "room_type": "Shared room", "accommodates": 1, "beds": 1,
             "bedrooms": 1, "bathrooms": 1, "shared_bathroom": 1},
            {"low"},
        ),
        (
            {**BASE, **MANHATTAN, "room_type": "Entire home/apt", "accommodates": 10,
             "beds": 5, "bedrooms": 4, "bathrooms": 3, "tv": 1, "elevator": 1},
            {"high", "lux"},
        ),
        (
            {**BASE, "borough": "Queens", "latitude": 40.7282, "longitude": -73.7949,
             "room_type": "Private room", "accommodates": 1, "beds": 1, "bedrooms": 1},
            {"low"},
        ),
        (
            {**BASE, **MANHATTAN, "room_type": "Entire home/apt", "accommodates": 2, "beds": 1,
             "bedrooms": 1, "tv": 1, "elevator": 1},
            {"mid", "high"},
        ),
    ],
)  # fmt: skip
def test_obvious_cases(champion, listing, allowed):
    assert category(champion, listing) in allowed
