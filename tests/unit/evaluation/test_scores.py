import numpy as np
import pandas as pd
import pytest
from small_models import SMALL_VOTE

from mlops_lab.evaluation.scores import (
    HeldOut,
    fold_scores,
    held_out_probabilities,
    per_class_metrics,
    required_view,
    score_probabilities,
    selection_score,
    stratified_folds,
    view_of,
    vote_probabilities,
)
from mlops_lab.kernel.features import ALL_FEATURES
from mlops_lab.kernel.listing import OPTIONAL_FIELDS
from mlops_lab.kernel.modelling import build_model


def test_cross_validation_repeats_to_the_last_bit_with_a_threaded_forest(listing_sample):
    model = build_model(
        "random_forest",
        ("accommodates", "room_type", "latitude"),
        {"n_estimators": 40, "n_jobs": 2, "random_state": 0},
    )
    runs = [
        list(fold_scores(model, listing_sample, listing_sample["price_category"], 3, 0))
        for _ in range(3)
    ]
    assert runs[0] == runs[1] == runs[2]


def test_score_probabilities_of_a_perfect_model(categories):
    truth = pd.Series(categories * 2)
    probabilities = np.tile(np.eye(4), (2, 1)) * 0.97 + 0.0075
    scores = score_probabilities(truth, probabilities, categories)
    assert scores["accuracy"] == 1.0
    assert scores["roc_auc_ovr"] == 1.0
    assert scores["macro_f1"] == 1.0
    assert scores["log_loss"] == pytest.approx(-np.log(0.9775), rel=1e-3)


def test_score_probabilities_do_not_depend_on_category_order(categories):
    truth = pd.Series(["low", "mid", "lux", "high", "low"])
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(4), size=5)
    reordered = [2, 0, 3, 1]
    left = score_probabilities(truth, probabilities, categories)
    right = score_probabilities(
        truth, probabilities[:, reordered], [categories[i] for i in reordered]
    )
    assert left == pytest.approx(right)


def test_per_class_metrics(categories):
    truth = pd.Series(["low", "low", "mid", "lux"])
    probabilities = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]], float)
    per_class = per_class_metrics(truth, probabilities, categories)
    assert per_class["low"] == {"precision": 1.0, "recall": 0.5, "support": 2.0}
    assert per_class["mid"]["precision"] == 0.5
    assert per_class["high"] == {"precision": 0.0, "recall": 0.0, "support": 0.0}


def test_selection_score_is_the_weighted_mean_over_views(required_mostly):
    scores = {"full": {"roc_auc_ovr": 0.9}, "required": {"roc_auc_ovr": 0.8}}
    assert selection_score(scores, required_mostly) == pytest.approx(0.825)


def test_the_required_view_drops_exactly_the_optional_fields(listing_sample):
    callers = required_view(listing_sample)
    assert set(listing_sample.columns) - set(callers.columns) == set(OPTIONAL_FIELDS)
    assert view_of(listing_sample, "full") is listing_sample


def test_a_vote_of_members_held_out_predictions_is_the_votes_own(listing_sample, categories):
    target = listing_sample["price_category"]
    folds = stratified_folds(target, 3, 0)
    members = [
        held_out_probabilities(
            build_model(member["estimator"], ALL_FEATURES, member["params"]),
            listing_sample,
            target,
            folds,
        )[0]
        for member in SMALL_VOTE["members"].values()
    ]
    vote, _ = held_out_probabilities(
        build_model("soft_vote", ALL_FEATURES, SMALL_VOTE), listing_sample, target, folds
    )
    classes = sorted(categories)
    combined = vote_probabilities(
        [HeldOut(member, dict.fromkeys(member, np.ones((1, 4))), classes) for member in members]
    )
    for view in ("full", "required"):
        assert np.array_equal(combined[view], vote[view])
