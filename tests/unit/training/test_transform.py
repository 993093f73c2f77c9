import numpy as np
import pandas as pd
import pytest
from small_models import SMALL_BOOSTING, SMALL_FOREST, SMALL_VOTE

from mlops_lab.config import CandidateConfig, SelectionConfig, with_member_params
from mlops_lab.features import ALL_FEATURES
from mlops_lab.listing import MODEL_INPUT_FIELDS, OPTIONAL_FIELDS, REQUIRED_FIELDS
from mlops_lab.modelling import build_model
from mlops_lab.training.transform import (
    CandidateResult,
    HeldOut,
    ViewScores,
    candidate_result,
    candidates_frame,
    choose_winner,
    flat_params,
    fold_scores,
    held_out_probabilities,
    input_field_types,
    metrics_document,
    ordered_probabilities,
    per_class_metrics,
    required_view,
    results_table,
    score_probabilities,
    selection_score,
    split_like_notebook,
    stratified_folds,
    train_candidate,
    view_of,
    vote_probabilities,
)

CATEGORIES = ["low", "mid", "high", "lux"]
REQUIRED_MOSTLY = SelectionConfig(
    metric="roc_auc_ovr", view_weights={"required": 0.75, "full": 0.25}
)


def result(name: str, full: float, required: float) -> CandidateResult:
    def view(score: float) -> ViewScores:
        scores = {"roc_auc_ovr": score, "macro_f1": 0.5, "accuracy": 0.6, "log_loss": 0.9}
        return ViewScores(scores, dict.fromkeys(scores, 0.01), dict(scores))

    return CandidateResult(name, {"full": view(full), "required": view(required)}, seconds=1.0)


def test_split_like_notebook_matches_train_test_split_and_is_repeatable(listing_sample):
    first = split_like_notebook(listing_sample, 0.15, 1)
    second = split_like_notebook(listing_sample, 0.15, 1)
    assert len(first.test_features) == 300
    assert first.test_features.index.equals(second.test_features.index)
    assert "price" not in first.train_features.columns
    assert "price_category" not in first.train_features.columns
    assert list(first.train_features.columns) == ["id", *MODEL_INPUT_FIELDS]


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


def test_choose_winner_by_the_weighted_cv_score_and_first_on_ties():
    # a is better on the required view, b and c (tied) on the full view.
    results = [result("a", 0.80, 0.90), result("b", 0.85, 0.80), result("c", 0.85, 0.80)]
    assert choose_winner(results, REQUIRED_MOSTLY).name == "a"
    full_only = SelectionConfig(metric="roc_auc_ovr", view_weights={"full": 1})
    assert choose_winner(results, full_only).name == "b"


def test_selection_score_is_the_weighted_mean_over_views():
    scores = {"full": {"roc_auc_ovr": 0.9}, "required": {"roc_auc_ovr": 0.8}}
    assert selection_score(scores, REQUIRED_MOSTLY) == pytest.approx(0.825)


def test_input_field_types_require_the_challenge_fields_except_the_borough_name():
    fields = input_field_types()
    required = {name for name, (_, needed) in fields.items() if needed}
    assert required == set(REQUIRED_FIELDS) - {"borough"}
    assert fields["neighbourhood"] == ("string", False)
    assert fields["id"] == ("long", False)
    assert fields["accommodates"] == ("double", True)


def test_results_table_frame_and_metrics_show_both_views():
    results = [result("notebook", 0.81, 0.81), result("router", 0.88, 0.87)]
    table = results_table(results, "router", REQUIRED_MOSTLY)
    assert "required 0.75" in table.splitlines()[0]
    assert "router" in table.splitlines()[-1] and "winner" in table.splitlines()[-1]
    frame = candidates_frame(results, "router", REQUIRED_MOSTLY)
    assert frame["winner"].tolist() == [False, True]
    assert {"cv_required_roc_auc_ovr", "test_full_macro_f1", "cv_selection_score"} <= set(
        frame.columns
    )
    document = metrics_document(results, results[1], "notebook", REQUIRED_MOSTLY)
    assert document["required"]["test"]["roc_auc_ovr"] == 0.87
    assert document["reference"]["full"]["test"]["roc_auc_ovr"] == 0.81
    assert set(document["candidates"]["notebook"]) == {"full", "required"}
    assert document["selection"]["cv_score"] == pytest.approx(0.8725)


def test_the_required_view_drops_exactly_the_optional_fields(listing_sample):
    callers = required_view(listing_sample)
    assert set(listing_sample.columns) - set(callers.columns) == set(OPTIONAL_FIELDS)
    assert view_of(listing_sample, "full") is listing_sample


def test_a_vote_of_members_held_out_predictions_is_the_votes_own(listing_sample):
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
    classes = sorted(CATEGORIES)
    combined = vote_probabilities(
        [HeldOut(member, dict.fromkeys(member, np.ones((1, 4))), classes) for member in members]
    )
    for view in ("full", "required"):
        assert np.array_equal(combined[view], vote[view])


def test_an_ensemble_reuses_its_members_and_scores_as_if_fitted_whole(listing_sample):
    split = split_like_notebook(listing_sample, 0.2, 1)
    folds = stratified_folds(split.train_target, 3, 0)
    trained: dict = {}
    candidates = [
        CandidateConfig(
            name="forest", estimator="random_forest", features="all", params=SMALL_FOREST
        ),
        CandidateConfig(
            name="boosting",
            estimator="hist_gradient_boosting",
            features="all",
            params=SMALL_BOOSTING,
            decision="macro_f1",
        ),
        CandidateConfig(
            name="vote",
            estimator="soft_vote",
            features="all",
            members=["forest", "boosting"],
            decision="macro_f1",
        ),
        CandidateConfig(
            name="required_only",
            estimator="hist_gradient_boosting",
            features="required",
            params=SMALL_BOOSTING,
        ),
    ]
    candidates.append(
        CandidateConfig(name="router", estimator="field_router", members=["vote", "required_only"])
    )
    resolved: list[CandidateConfig] = []
    for candidate in candidates:
        # As config.yaml is read: an ensemble takes its (earlier) members' settings.
        resolved.append(with_member_params(candidate, resolved))
        trained[candidate.name] = train_candidate(resolved[-1], split, folds, trained)
    # The vote assembled from its members: the same probabilities as the vote fitted anew.
    vote_members = {
        "forest": {"estimator": "random_forest", "params": SMALL_FOREST},
        "boosting": {"estimator": "hist_gradient_boosting", "params": SMALL_BOOSTING},
    }
    fitted_vote = build_model("soft_vote", ALL_FEATURES, {"members": vote_members}).fit(
        split.train_features, split.train_target
    )
    assert np.array_equal(
        trained["vote"].model.predict_proba(split.test_features),
        fitted_vote.predict_proba(split.test_features),
    )
    scores = {
        name: candidate_result(name, trained[name], split, folds, CATEGORIES)
        for name in ("vote", "required_only", "router")
    }
    # The router is the vote on complete listings and the required-fields model otherwise.
    assert scores["router"].views["full"] == scores["vote"].views["full"]
    assert scores["router"].views["required"] == scores["required_only"].views["required"]
    # A model on the required fields alone sees the same listing on both views.
    assert scores["required_only"].views["full"] == scores["required_only"].views["required"]


def test_flat_params_names_a_soft_votes_member_parameters_with_dots():
    params = {"members": {"forest": {"estimator": "random_forest", "params": {"n_jobs": -1}}}}
    assert flat_params(params) == {
        "members.forest.estimator": "random_forest",
        "members.forest.params.n_jobs": -1,
    }
    assert flat_params({"max_iter": 5}) == {"max_iter": 5}
