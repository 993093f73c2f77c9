import numpy as np
import pytest
from projects import PROJECT_ROOT
from small_models import SMALL_BOOSTING, SMALL_FOREST

from mlops_lab.config import (
    CandidateConfig,
    SelectionConfig,
    load_config,
    with_member_params,
)
from mlops_lab.evaluation.prepared import split_like_notebook
from mlops_lab.evaluation.scores import stratified_folds
from mlops_lab.kernel.features import ALL_FEATURES
from mlops_lab.kernel.modelling import build_model
from mlops_lab.stages.training.transform import (
    CandidateResult,
    ViewScores,
    candidate_keys,
    candidate_result,
    candidates_frame,
    choose_winner,
    flat_params,
    metrics_document,
    results_table,
    train_candidates,
)


def result(name: str, full: float, required: float) -> CandidateResult:
    def view(score: float) -> ViewScores:
        scores = {"roc_auc_ovr": score, "macro_f1": 0.5, "accuracy": 0.6, "log_loss": 0.9}
        return ViewScores(scores, dict.fromkeys(scores, 0.01), dict(scores))

    return CandidateResult(name, {"full": view(full), "required": view(required)}, seconds=1.0)


def test_choose_winner_by_the_weighted_cv_score_and_first_on_ties(required_mostly):
    # a is better on the required view, b and c (tied) on the full view.
    results = [result("a", 0.80, 0.90), result("b", 0.85, 0.80), result("c", 0.85, 0.80)]
    assert choose_winner(results, required_mostly).name == "a"
    full_only = SelectionConfig(metric="roc_auc_ovr", view_weights={"full": 1})
    assert choose_winner(results, full_only).name == "b"


def test_results_table_frame_and_metrics_show_both_views(required_mostly):
    results = [result("notebook", 0.81, 0.81), result("router", 0.88, 0.87)]
    table = results_table(results, "router", required_mostly)
    assert "required 0.75" in table.splitlines()[0]
    assert "router" in table.splitlines()[-1] and "winner" in table.splitlines()[-1]
    frame = candidates_frame(results, "router", required_mostly)
    assert frame["winner"].tolist() == [False, True]
    assert {"cv_required_roc_auc_ovr", "test_full_macro_f1", "cv_selection_score"} <= set(
        frame.columns
    )
    document = metrics_document(results, results[1], "notebook", required_mostly)
    assert document["required"]["test"]["roc_auc_ovr"] == 0.87
    assert document["reference"]["full"]["test"]["roc_auc_ovr"] == 0.81
    assert set(document["candidates"]["notebook"]) == {"full", "required"}
    assert document["selection"]["cv_score"] == pytest.approx(0.8725)


def test_an_ensemble_reuses_its_members_and_scores_as_if_fitted_whole(listing_sample, categories):
    split = split_like_notebook(listing_sample, 0.2, 1)
    folds = stratified_folds(split.train_target, 3, 0)
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
    trained = {
        candidate.name: model
        for candidate, (model, _) in zip(
            resolved, train_candidates(resolved, split, folds, {}), strict=True
        )
    }
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
        name: candidate_result(name, trained[name], split, folds, categories)
        for name in ("vote", "required_only", "router")
    }
    # The router is the vote on complete listings and the required-fields model otherwise.
    assert scores["router"].views["full"] == scores["vote"].views["full"]
    assert scores["router"].views["required"] == scores["required_only"].views["required"]
    # A model on the required fields alone sees the same listing on both views.
    assert scores["required_only"].views["full"] == scores["required_only"].views["required"]


@pytest.mark.parametrize(
    ("estimator", "params", "decision"),
    [
        ("hist_gradient_boosting", SMALL_BOOSTING, "macro_f1"),
        ("random_forest", {**SMALL_FOREST, "n_jobs": -1}, "most_probable"),
    ],
)
def test_fitting_in_two_processes_gives_the_same_candidate_to_the_bit(
    listing_sample, estimator, params, decision
):
    split = split_like_notebook(listing_sample, 0.2, 1)
    folds = stratified_folds(split.train_target, 3, 0)
    candidate = CandidateConfig(
        name="candidate", estimator=estimator, features="all", params=params, decision=decision
    )
    alone, side_by_side = (
        next(train_candidates([candidate], split, folds, {}, processes))[0] for processes in (1, 2)
    )
    for view in ("full", "required"):
        assert np.array_equal(
            alone.held_out.probabilities[view], side_by_side.held_out.probabilities[view]
        )
        assert np.array_equal(alone.held_out.weights[view], side_by_side.held_out.weights[view])
    assert np.array_equal(
        alone.model.predict_proba(split.test_features),
        side_by_side.model.predict_proba(split.test_features),
    )
    assert np.array_equal(
        alone.model.predict(split.test_features), side_by_side.model.predict(split.test_features)
    )


def test_flat_params_names_a_soft_votes_member_parameters_with_dots():
    params = {"members": {"forest": {"estimator": "random_forest", "params": {"n_jobs": -1}}}}
    assert flat_params(params) == {
        "members.forest.estimator": "random_forest",
        "members.forest.params.n_jobs": -1,
    }
    assert flat_params({"max_iter": 5}) == {"max_iter": 5}


CONFIG = PROJECT_ROOT / "config.yaml"


def keys_of(candidates: list[CandidateConfig], training, data: str = "data") -> dict[str, str]:
    """Every candidate's key, as training computes them."""
    training = training.model_copy(update={"candidates": candidates})
    return candidate_keys(training, data, ["low", "mid", "high", "lux"], "code")


def test_a_candidates_key_changes_with_it_and_with_its_members_only():
    training = load_config(CONFIG, tuned_params=False).training
    before = keys_of(training.candidates, training)
    assert keys_of(training.candidates, training) == before
    changed = [
        (
            candidate.model_copy(update={"params": {**candidate.params, "learning_rate": 0.05}})
            if candidate.name == "tuned_gradient_boosting"
            else candidate
        )
        for candidate in training.candidates
    ]
    after = keys_of(changed, training)
    moved = {name for name in before if before[name] != after[name]}
    # The candidate, the blend it is a member of, and the router over that blend.
    assert moved == {"tuned_gradient_boosting", "tuned_blend", "routed_blend"}
    assert set(keys_of(training.candidates, training, data="other data").values()).isdisjoint(
        before.values()
    )
