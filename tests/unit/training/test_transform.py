import numpy as np
import pandas as pd
import pytest

from mlops_lab.features import build_model
from mlops_lab.listing import MODEL_INPUT_FIELDS, REQUIRED_FIELDS
from mlops_lab.training.transform import (
    CandidateResult,
    beats_champion,
    candidates_frame,
    choose_winner,
    cross_validate_model,
    cross_validate_with_decision,
    flat_params,
    input_field_types,
    ordered_probabilities,
    per_class_metrics,
    results_table,
    score_probabilities,
    split_like_notebook,
)

CATEGORIES = ["low", "mid", "high", "lux"]


def result(name: str, cv: float) -> CandidateResult:
    scores = {"roc_auc_ovr": cv, "macro_f1": 0.5, "accuracy": 0.6}
    test = {"accuracy": 0.6, "roc_auc_ovr": cv, "macro_f1": 0.5, "log_loss": 0.9}
    return CandidateResult(name, scores, dict.fromkeys(scores, 0.01), test, seconds=1.0)


def test_split_like_notebook_matches_train_test_split_and_is_repeatable(listing_sample):
    first = split_like_notebook(listing_sample, 0.15, 1)
    second = split_like_notebook(listing_sample, 0.15, 1)
    assert len(first.test_features) == 300
    assert first.test_features.index.equals(second.test_features.index)
    assert "price" not in first.train_features.columns
    assert "price_category" not in first.train_features.columns
    assert list(first.train_features.columns) == ["id", *MODEL_INPUT_FIELDS]


def test_cross_validate_model_reports_mean_and_spread(listing_sample):
    model = build_model("hist_gradient_boosting", ("accommodates", "room_type"), {"max_iter": 5})
    means, spreads = cross_validate_model(
        model, listing_sample, listing_sample["price_category"], folds=3, random_state=0
    )
    assert set(means) == {"roc_auc_ovr", "macro_f1", "accuracy", "log_loss"}
    assert 0.5 < means["roc_auc_ovr"] <= 1.0
    assert all(value >= 0 for value in spreads.values())


def test_cross_validation_with_a_decision_keeps_ranking_scores_and_returns_held_out_rows(
    listing_sample,
):
    model = build_model("hist_gradient_boosting", ("accommodates", "room_type"), {"max_iter": 5})
    target = listing_sample["price_category"]
    plain_means, _ = cross_validate_model(model, listing_sample, target, folds=3, random_state=0)
    means, spreads, held_out = cross_validate_with_decision(
        model, listing_sample, target, folds=3, random_state=0
    )
    # Weights change labels only: ranking and probabilities score the same.
    assert means["roc_auc_ovr"] == plain_means["roc_auc_ovr"]
    assert means["log_loss"] == plain_means["log_loss"]
    assert held_out.shape == (len(listing_sample), 4)
    assert np.allclose(held_out.sum(axis=1), 1.0)
    assert all(value >= 0 for value in spreads.values())


def test_cross_validation_repeats_to_the_last_bit_with_a_threaded_forest(listing_sample):
    model = build_model(
        "random_forest",
        ("accommodates", "room_type", "latitude"),
        {"n_estimators": 40, "n_jobs": 2, "random_state": 0},
    )
    runs = [
        cross_validate_model(model, listing_sample, listing_sample["price_category"], 3, 0)
        for _ in range(3)
    ]
    assert runs[0] == runs[1] == runs[2]


def test_score_probabilities_of_a_perfect_model():
    truth = pd.Series(CATEGORIES * 2)
    probabilities = np.tile(np.eye(4), (2, 1)) * 0.97 + 0.0075
    scores = score_probabilities(truth, probabilities, CATEGORIES)
    assert scores["accuracy"] == 1.0
    assert scores["roc_auc_ovr"] == 1.0
    assert scores["macro_f1"] == 1.0
    assert scores["log_loss"] == pytest.approx(-np.log(0.9775), rel=1e-3)


def test_score_probabilities_do_not_depend_on_category_order():
    truth = pd.Series(["low", "mid", "lux", "high", "low"])
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(4), size=5)
    reordered = [2, 0, 3, 1]
    left = score_probabilities(truth, probabilities, CATEGORIES)
    right = score_probabilities(
        truth, probabilities[:, reordered], [CATEGORIES[i] for i in reordered]
    )
    assert left == pytest.approx(right)


def test_per_class_metrics():
    truth = pd.Series(["low", "low", "mid", "lux"])
    probabilities = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]], float)
    per_class = per_class_metrics(truth, probabilities, CATEGORIES)
    assert per_class["low"] == {"precision": 1.0, "recall": 0.5, "support": 2.0}
    assert per_class["mid"]["precision"] == 0.5
    assert per_class["high"] == {"precision": 0.0, "recall": 0.0, "support": 0.0}


def test_ordered_probabilities_follow_the_category_order():
    probabilities = np.array([[0.1, 0.2, 0.3, 0.4]])
    ordered = ordered_probabilities(probabilities, ["high", "low", "lux", "mid"], CATEGORIES)
    assert ordered.tolist() == [[0.2, 0.4, 0.1, 0.3]]


def test_choose_winner_by_cv_and_first_on_ties():
    results = [result("a", 0.80), result("b", 0.85), result("c", 0.85)]
    assert choose_winner(results, "roc_auc_ovr").name == "b"


@pytest.mark.parametrize(
    ("new", "champion", "promoted"),
    [(0.9, None, True), (0.9, 0.8, True), (0.8, 0.8, False), (0.7, 0.8, False)],
)
def test_beats_champion(new, champion, promoted):
    assert beats_champion(new, champion) is promoted


def test_input_field_types_require_the_challenge_fields_except_the_borough_name():
    fields = input_field_types()
    required = {name for name, (_, needed) in fields.items() if needed}
    assert required == set(REQUIRED_FIELDS) - {"borough"}
    assert fields["neighbourhood"] == ("string", False)
    assert fields["id"] == ("long", False)
    assert fields["accommodates"] == ("double", True)


def test_results_table_and_frame_mark_the_winner():
    results = [result("notebook", 0.81), result("boosting", 0.88)]
    table = results_table(results, "boosting", "roc_auc_ovr")
    assert "boosting" in table.splitlines()[-1] and "winner" in table.splitlines()[-1]
    frame = candidates_frame(results, "boosting")
    assert frame["winner"].tolist() == [False, True]
    assert {"cv_roc_auc_ovr", "cv_roc_auc_ovr_std", "test_macro_f1"} <= set(frame.columns)


def test_flat_params_names_a_soft_votes_member_parameters_with_dots():
    params = {"members": {"forest": {"estimator": "random_forest", "params": {"n_jobs": -1}}}}
    assert flat_params(params) == {
        "members.forest.estimator": "random_forest",
        "members.forest.params.n_jobs": -1,
    }
    assert flat_params({"max_iter": 5}) == {"max_iter": 5}
