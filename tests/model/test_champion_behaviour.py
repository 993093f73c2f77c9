"""Behaviour of the champion, in the manner of Made-With-ML's tests/model: invariance,
directional expectations and minimum functionality.

The champion is the candidate `metrics/training.json` names as the pipeline's winner, trained
as the training stage trains it (the notebook's training part of the shipped data, the same
folds, each decision step's weights learnt on its members' held-out predictions), and asked
through the service's own path: each listing validated by the API's schema, answered by the
model the service would serve (compiled when it matches), labelled as the API labels it."""

import json

import numpy as np
import pandas as pd
import pytest

from mlops_lab.config import CandidateConfig
from mlops_lab.evaluation.prepared import Split, split_like_notebook
from mlops_lab.evaluation.scores import stratified_folds
from mlops_lab.kernel.contract import Listing
from mlops_lab.kernel.features import conform_records
from mlops_lab.kernel.listing import MODEL_INPUT_FIELDS, REQUIRED_FIELDS
from mlops_lab.serving.loading import ServedModel, choose_predictor, complete_listings
from mlops_lab.stages.training.transform import input_example, train_candidates

CATEGORIES = ["low", "mid", "high", "lux"]
# Representative points: the Grand Concourse in the Bronx, Midtown Manhattan.
BRONX = {"borough": "Bronx", "latitude": 40.8270, "longitude": -73.9230}
MANHATTAN = {"borough": "Manhattan", "latitude": 40.7549, "longitude": -73.9840}


@pytest.fixture(scope="module")
def split(lab_config, prepared_listings) -> Split:
    return split_like_notebook(
        prepared_listings, lab_config.training.test_size, lab_config.training.split_random_state
    )


def with_members(name: str, candidates: dict[str, CandidateConfig]) -> set[str]:
    """A candidate's name and those of its members, theirs, and so on."""
    members = candidates[name].members or []
    return {name}.union(*(with_members(member, candidates) for member in members))


@pytest.fixture(scope="module")
def champion(lab_config, split, project_root) -> ServedModel:
    training = lab_config.training
    winner = json.loads((project_root / training.metrics_path).read_text())["winner"]
    needed = with_members(winner, {c.name: c for c in training.candidates})
    # Members come before their ensembles in the config, so the winner is trained last.
    candidates = [c for c in training.candidates if c.name in needed]
    folds = stratified_folds(split.train_target, training.cv_folds, training.cv_random_state)
    *_, (trained, _) = train_candidates(candidates, split, folds, {}, training.fit_processes)
    model = trained.model
    example = input_example(split.test_features)
    predictor = choose_predictor(model, example)
    return ServedModel(
        model, predictor, winner, winner, "trained here", CATEGORIES, complete_listings(example)
    )


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


def probabilities(champion: ServedModel, listings: list[dict]) -> np.ndarray:
    """The served probabilities, columns in CATEGORIES order."""
    return champion.answer(conform_records(listings))[0]


def expected_category(champion: ServedModel, listings: list[dict]) -> np.ndarray:
    """0 for low … 3 for lux, weighted by the probabilities: a price level per listing."""
    return probabilities(champion, listings) @ np.arange(len(CATEGORIES))


def served_category(champion: ServedModel, listing: dict) -> str:
    """The category /predict answers: the listing validated as the API does, then labelled."""
    [answer] = champion.predict([Listing.model_validate(listing)])
    return answer["price_category"]


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
BRONX_SHARED_ROOM = {
    **BASE,
    **BRONX,
    "room_type": "Shared room",
    "accommodates": 1,
    "beds": 1,
    "bedrooms": 1,
    "bathrooms": 1,
    "shared_bathroom": 1,
}
MANHATTAN_BIG_HOME = {
    **BASE,
    **MANHATTAN,
    "room_type": "Entire home/apt",
    "accommodates": 10,
    "beds": 5,
    "bedrooms": 4,
    "bathrooms": 3,
    "tv": 1,
    "elevator": 1,
}
QUEENS_PRIVATE_ROOM = {
    **BASE,
    "borough": "Queens",
    "latitude": 40.7282,
    "longitude": -73.7949,
    "room_type": "Private room",
    "accommodates": 1,
    "beds": 1,
    "bedrooms": 1,
}
MIDTOWN_ONE_BEDROOM = {
    **BASE,
    **MANHATTAN,
    "room_type": "Entire home/apt",
    "accommodates": 2,
    "beds": 1,
    "bedrooms": 1,
    "tv": 1,
    "elevator": 1,
}
OBVIOUS_CASES = [
    pytest.param(BRONX_SHARED_ROOM, {"low"}, id="bronx-shared-room"),
    pytest.param(MANHATTAN_BIG_HOME, {"high", "lux"}, id="manhattan-big-home"),
    pytest.param(QUEENS_PRIVATE_ROOM, {"low"}, id="queens-private-room"),
    pytest.param(MIDTOWN_ONE_BEDROOM, {"mid", "high"}, id="midtown-one-bedroom"),
]


@pytest.mark.parametrize(("listing", "allowed"), OBVIOUS_CASES)
def test_obvious_cases_are_most_probable_in_an_expected_category(champion, listing, allowed):
    [most_probable] = np.argmax(probabilities(champion, [listing]), axis=1)
    assert CATEGORIES[most_probable] in allowed


# The label the API answers: the decision step's weights can move it off the most probable
# category (towards the rarer ones, for macro F1).
@pytest.mark.parametrize(
    ("listing", "allowed"),
    [
        *OBVIOUS_CASES[:3],
        pytest.param(
            MIDTOWN_ONE_BEDROOM,
            {"mid", "high"},
            id="midtown-one-bedroom",
            marks=pytest.mark.xfail(
                strict=True,
                reason=(
                    "served as lux: high is the most probable (0.42, lux 0.34, for the champion "
                    "trained on the shipped data), but its weights (high 0.85, lux 1.35) label "
                    "it lux"
                ),
            ),
        ),
    ],
)
def test_obvious_cases_are_served_an_expected_category(champion, listing, allowed):
    assert served_category(champion, listing) in allowed
