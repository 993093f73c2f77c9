"""Pure functions for splitting, scoring and choosing price-category models, on two views.

Every model is scored on two views of the same listings: *full*, every field the API accepts,
and *required*, only the API's required fields, every optional field absent exactly as the
API passes an absent field to the model. Callers mostly send the required fields, so what is
measured on that view is what they get.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    precision_recall_fscore_support,
    roc_auc_score,
)
from sklearn.model_selection import StratifiedKFold, train_test_split

from mlops_lab.config import VIEWS, CandidateConfig, SelectionConfig
from mlops_lab.decision import MacroF1Decision, macro_f1_weights, weighted_labels
from mlops_lab.features import conform_listings, present_fields, resolve_features
from mlops_lab.listing import (
    BOROUGH_ALIAS,
    MODEL_INPUT_FIELDS,
    NUMERIC_FIELDS,
    OPTIONAL_FIELDS,
    REQUIRED_FIELDS,
)
from mlops_lab.modelling import (
    Model,
    assemble_soft_vote,
    build_model,
    predict_sequentially,
    row_decision_weights,
)
from mlops_lab.routing import route_listings

TARGET = "price_category"
Scores = dict[str, float]
Folds = list[tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Split:
    train_features: pd.DataFrame
    test_features: pd.DataFrame
    train_target: pd.Series
    test_target: pd.Series


@dataclass(frozen=True)
class ViewScores:
    """How a candidate scores on one view: CV of the training part, and the test part once."""

    cv_mean: Scores
    cv_std: Scores
    test: Scores
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass
class CandidateResult:
    name: str
    views: dict[str, ViewScores]
    seconds: float = 0.0


@dataclass(frozen=True)
class HeldOut:
    """A candidate's cross-validated evidence on the training part: for each view, every row's
    probabilities from the fold model that did not see it, and the weights that label it."""

    probabilities: dict[str, np.ndarray]
    weights: dict[str, np.ndarray]
    # Probability columns, in the models' (sorted) class order.
    classes: list[str]


def split_like_notebook(listings: pd.DataFrame, test_size: float, random_state: int) -> Split:
    """The notebook's train_test_split (not stratified) over model inputs and price_category."""
    features = listings[["id", *MODEL_INPUT_FIELDS]]
    train_x, test_x, train_y, test_y = train_test_split(
        features, listings[TARGET], test_size=test_size, random_state=random_state
    )
    return Split(train_x, test_x, train_y, test_y)


def required_view(listings: pd.DataFrame) -> pd.DataFrame:
    """The listings as a caller sending only the required fields gives them to the model."""
    return listings.drop(columns=[name for name in OPTIONAL_FIELDS if name in listings.columns])


def view_of(listings: pd.DataFrame, view: str) -> pd.DataFrame:
    """The listings as seen on one view: 'full' or 'required'."""
    return listings if view == "full" else required_view(listings)


def flat_params(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested parameters (an ensemble's members) as one level of dotted names."""
    flat: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, dict):
            flat.update(flat_params(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = value
    return flat


def stratified_folds(target: pd.Series, folds: int, random_state: int) -> Folds:
    """The (training rows, validation rows) of each stratified fold, shuffled by the seed."""
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=random_state)
    return list(splitter.split(np.zeros(len(target)), target))


@dataclass(frozen=True)
class FoldPrediction:
    validation_rows: np.ndarray
    # View → probabilities of the validation rows, columns in `classes` order (sorted).
    probabilities: dict[str, np.ndarray]
    classes: list[str]


def fold_predictions(
    model: Model,
    features: pd.DataFrame,
    target: pd.Series,
    folds: Folds,
    views: tuple[str, ...] = ("full",),
) -> Iterator[FoldPrediction]:
    """Each fold's probabilities, on each view, from the model fitted on the other folds."""
    for train_rows, validation_rows in folds:
        fold_model = clone(model).fit(features.iloc[train_rows], target.iloc[train_rows])
        # Fit on all cores, predict on one: the scores then repeat to the last bit.
        predict_sequentially(fold_model)
        validation = features.iloc[validation_rows]
        yield FoldPrediction(
            validation_rows,
            {view: fold_model.predict_proba(view_of(validation, view)) for view in views},
            list(fold_model.classes_),
        )


def fold_scores(
    model: Model, features: pd.DataFrame, target: pd.Series, folds: int, random_state: int
) -> Iterator[Scores]:
    """Every score_probabilities metric of each stratified fold on the full view, labelled by
    the most probable category, as it is scored (tuning prunes on the first folds)."""
    for fold in fold_predictions(
        model, features, target, stratified_folds(target, folds, random_state)
    ):
        yield score_probabilities(
            target.iloc[fold.validation_rows], fold.probabilities["full"], fold.classes
        )


def summarize_folds(scores: list[Scores]) -> tuple[Scores, Scores]:
    """Mean and standard deviation over folds of each metric."""
    names = scores[0].keys()
    means = {name: float(np.mean([fold[name] for fold in scores])) for name in names}
    spreads = {name: float(np.std([fold[name] for fold in scores])) for name in names}
    return means, spreads


def held_out_probabilities(
    model: Model, features: pd.DataFrame, target: pd.Series, folds: Folds
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Every training row's held-out probabilities on each view, and their class order."""
    probabilities: dict[str, np.ndarray] = {}
    classes: list[str] = []
    for fold in fold_predictions(model, features, target, folds, VIEWS):
        classes = fold.classes
        for view, rows in fold.probabilities.items():
            probabilities.setdefault(view, np.empty((len(features), len(classes))))
            probabilities[view][fold.validation_rows] = rows
    return probabilities, classes


def fold_decision_weights(
    held_out: np.ndarray, target: pd.Series, folds: Folds, classes: list[str], decision: str
) -> np.ndarray:
    """Each row's label weights in CV: for macro_f1, those learnt on the held-out predictions
    of the other folds' rows (so no row's label is fitted on the row); else ones."""
    weights = np.ones_like(held_out)
    if decision == "macro_f1":
        truth = target.to_numpy()
        for train_rows, validation_rows in folds:
            weights[validation_rows] = macro_f1_weights(
                held_out[train_rows], truth[train_rows], np.asarray(classes)
            )
    return weights


def with_decision(
    probabilities: dict[str, np.ndarray],
    classes: list[str],
    target: pd.Series,
    folds: Folds,
    decision: str,
) -> HeldOut:
    """Held-out evidence labelled by a decision learnt on the full view's predictions, as the
    final model's decision step learns it."""
    weights = fold_decision_weights(probabilities["full"], target, folds, classes, decision)
    return HeldOut(probabilities, dict.fromkeys(probabilities, weights), classes)


def vote_probabilities(members: list[HeldOut]) -> dict[str, np.ndarray]:
    """The mean of the members' held-out probabilities on each view, as SoftVoteClassifier
    averages them (members fitted on the same folds give the vote's own fold predictions)."""
    return {
        view: np.mean(np.asarray([member.probabilities[view] for member in members]), axis=0)
        for view in members[0].probabilities
    }


def routed_held_out(
    routes: list[tuple[str, ...]], members: list[HeldOut], features: pd.DataFrame
) -> HeldOut:
    """A router's held-out evidence: each row of each view from the member whose route (the
    fields it needs) the row takes."""
    probabilities, weights = {}, {}
    for view in members[0].probabilities:
        present = present_fields(conform_listings(view_of(features, view)))
        chosen = route_listings(present, routes)
        probabilities[view] = np.empty_like(members[0].probabilities[view])
        weights[view] = np.empty_like(members[0].weights[view])
        for position, member in enumerate(members):
            rows = chosen == position
            probabilities[view][rows] = member.probabilities[view][rows]
            weights[view][rows] = member.weights[view][rows]
    return HeldOut(probabilities, weights, members[0].classes)


def cross_validated_scores(
    held_out: HeldOut, target: pd.Series, folds: Folds
) -> dict[str, tuple[Scores, Scores]]:
    """Per view, the mean and spread over folds of every score_probabilities metric."""
    summary = {}
    for view, probabilities in held_out.probabilities.items():
        scores = [
            score_probabilities(
                target.iloc[rows],
                probabilities[rows],
                held_out.classes,
                held_out.weights[view][rows],
            )
            for _, rows in folds
        ]
        summary[view] = summarize_folds(scores)
    return summary


def score_probabilities(
    truth: pd.Series,
    probabilities: np.ndarray,
    classes: list[str],
    weights: np.ndarray | None = None,
) -> Scores:
    """Accuracy, one-vs-rest ROC AUC, macro F1 and log loss of predicted class probabilities,
    labelled by the model's decision weights, one row or one per listing (None: the most
    probable category)."""
    predicted = weighted_labels(probabilities, _weights(weights, classes), np.asarray(classes))
    # roc_auc_score and log_loss read probability columns in sorted label order.
    alphabetical = np.argsort(classes)
    sorted_probabilities = probabilities[:, alphabetical]
    sorted_labels = list(np.asarray(classes)[alphabetical])
    return {
        "accuracy": float(accuracy_score(truth, predicted)),
        "roc_auc_ovr": float(
            roc_auc_score(truth, sorted_probabilities, multi_class="ovr", labels=sorted_labels)
        ),
        "macro_f1": float(f1_score(truth, predicted, average="macro")),
        "log_loss": float(log_loss(truth, sorted_probabilities, labels=sorted_labels)),
    }


def _weights(weights: np.ndarray | None, classes: list[str]) -> np.ndarray:
    """The decision weights given, or ones (the most probable category)."""
    return np.ones(len(classes)) if weights is None else weights


def per_class_metrics(
    truth: pd.Series,
    probabilities: np.ndarray,
    classes: list[str],
    weights: np.ndarray | None = None,
) -> dict[str, dict[str, float]]:
    """Precision, recall and support of each price category, labelled as score_probabilities."""
    predicted = weighted_labels(probabilities, _weights(weights, classes), np.asarray(classes))
    precision, recall, _, support = precision_recall_fscore_support(
        truth, predicted, labels=classes, zero_division=0
    )
    return {
        name: {"precision": float(p), "recall": float(r), "support": float(s)}
        for name, p, r, s in zip(classes, precision, recall, support, strict=True)
    }


def ordered_probabilities(
    probabilities: np.ndarray, model_classes: list[str], categories: list[str]
) -> np.ndarray:
    """Probability (or weight) columns reordered from the model's class order to the
    category order."""
    position = {name: index for index, name in enumerate(model_classes)}
    return probabilities[:, [position[name] for name in categories]]


@dataclass(frozen=True)
class Answers:
    """A model's answers for some listings: probabilities and label weights per listing, both
    in category order."""

    probabilities: np.ndarray
    weights: np.ndarray


def model_answers(model: Model, listings: pd.DataFrame, categories: list[str]) -> Answers:
    """The model's probabilities and label weights for the listings, in category order."""
    classes = list(model.classes_)
    return Answers(
        ordered_probabilities(model.predict_proba(listings), classes, categories),
        ordered_probabilities(row_decision_weights(model, listings), classes, categories),
    )


def scores_on_views(
    model: Model, features: pd.DataFrame, target: pd.Series, categories: list[str]
) -> dict[str, tuple[Scores, dict[str, dict[str, float]]]]:
    """Per view, the model's scores and per-category metrics on these listings."""
    scored = {}
    for view in VIEWS:
        answers = model_answers(model, view_of(features, view), categories)
        scored[view] = (
            score_probabilities(target, answers.probabilities, categories, answers.weights),
            per_class_metrics(target, answers.probabilities, categories, answers.weights),
        )
    return scored


def selection_score(scores: dict[str, Scores], selection: SelectionConfig) -> float:
    """The selection metric's mean over the views, weighted as config.yaml says."""
    total = sum(selection.view_weights.values())
    return (
        sum(
            weight * scores[view][selection.metric]
            for view, weight in selection.view_weights.items()
        )
        / total
    )


def selection_score_in_cv(result: CandidateResult, selection: SelectionConfig) -> float:
    """A candidate's selection score in CV of the training part."""
    return selection_score({v: s.cv_mean for v, s in result.views.items()}, selection)


def selection_score_on_test(result: CandidateResult, selection: SelectionConfig) -> float:
    """A candidate's selection score on the test part."""
    return selection_score({v: s.test for v, s in result.views.items()}, selection)


def choose_winner(results: list[CandidateResult], selection: SelectionConfig) -> CandidateResult:
    """The candidate with the best CV selection score; the earlier one in config on a tie."""
    return max(
        results,
        key=lambda result: (selection_score_in_cv(result, selection), -results.index(result)),
    )


def input_field_types() -> dict[str, tuple[str, bool]]:
    """Each field the model accepts, with its MLflow type and whether callers must send it."""
    fields: dict[str, tuple[str, bool]] = {"id": ("long", False)}
    for name in MODEL_INPUT_FIELDS:
        kind = "double" if name in NUMERIC_FIELDS else "string"
        # borough may come under the challenge's name instead, so neither is enforced here.
        fields[name] = (kind, name in REQUIRED_FIELDS and name != "borough")
    fields[BOROUGH_ALIAS] = ("string", False)
    return fields


def results_table(results: list[CandidateResult], winner: str, selection: SelectionConfig) -> str:
    """A fixed-width text table of every candidate's selection score and both views' scores."""
    weights = ", ".join(f"{view} {weight:g}" for view, weight in selection.view_weights.items())
    header = (
        f"{'candidate':<34} {'CV selection':>12} │ {'full view: CV AUC':>17} {'test AUC':>8} "
        f"{'test F1':>7} │ {'required: CV AUC':>16} {'test AUC':>8} {'test F1':>7} │ {'time':>6}"
    )
    lines = [
        f"selection: CV {selection.metric}, views weighted {weights}",
        header,
        "─" * len(header),
    ]
    for result in results:
        marker = "  ← winner" if result.name == winner else ""
        full, required = result.views["full"], result.views["required"]
        lines.append(
            f"{result.name:<34} {selection_score_in_cv(result, selection):>12.4f} │ "
            f"{full.cv_mean['roc_auc_ovr']:>17.4f} {full.test['roc_auc_ovr']:>8.4f} "
            f"{full.test['macro_f1']:>7.4f} │ {required.cv_mean['roc_auc_ovr']:>16.4f} "
            f"{required.test['roc_auc_ovr']:>8.4f} {required.test['macro_f1']:>7.4f} │ "
            f"{result.seconds:>5.1f}s{marker}"
        )
    return "\n".join(lines)


def candidate_metrics(result: CandidateResult) -> dict[str, float]:
    """A candidate's CV and test scores on both views as flat metric names, e.g.
    cv_required_roc_auc_ovr, cv_full_macro_f1_std, test_required_recall_lux."""
    metrics: dict[str, float] = {}
    for view, scores in result.views.items():
        metrics.update({f"cv_{view}_{name}": value for name, value in scores.cv_mean.items()})
        metrics.update({f"cv_{view}_{name}_std": value for name, value in scores.cv_std.items()})
        metrics.update({f"test_{view}_{name}": value for name, value in scores.test.items()})
        for category, measures in scores.per_class.items():
            metrics.update(
                {
                    f"test_{view}_{measure}_{category}": value
                    for measure, value in measures.items()
                    if measure != "support"
                }
            )
    return metrics


def candidates_frame(
    results: list[CandidateResult], winner: str, selection: SelectionConfig
) -> pd.DataFrame:
    """One row per candidate with its selection score and both views' CV and test scores."""
    rows = []
    for result in results:
        row: dict[str, object] = {
            "candidate": result.name,
            "winner": result.name == winner,
            "cv_selection_score": selection_score_in_cv(result, selection),
            "test_selection_score": selection_score_on_test(result, selection),
        }
        for view, scores in result.views.items():
            row.update({f"cv_{view}_{name}": value for name, value in scores.cv_mean.items()})
            row.update({f"cv_{view}_{name}_std": value for name, value in scores.cv_std.items()})
            row.update({f"test_{view}_{name}": value for name, value in scores.test.items()})
        rows.append(row)
    return pd.DataFrame(rows).round(6)


def metrics_document(
    results: list[CandidateResult],
    winner: CandidateResult,
    reference: str,
    selection: SelectionConfig,
) -> dict[str, object]:
    """metrics/training.json: the winner's scores per view, the reference's, and every
    candidate's headline scores per view (so `dvc metrics show` lists them side by side)."""
    return {
        "winner": winner.name,
        "selection": {
            "metric": selection.metric,
            "view_weights": dict(selection.view_weights),
            "cv_score": selection_score_in_cv(winner, selection),
            "test_score": selection_score_on_test(winner, selection),
        },
        **{
            view: {
                "test": scores.test,
                "cv_mean": scores.cv_mean,
                "cv_std": scores.cv_std,
                "per_class": scores.per_class,
            }
            for view, scores in winner.views.items()
        },
        "reference": {
            "name": reference,
            **{
                view: {"test": scores.test}
                for view, scores in next(r for r in results if r.name == reference).views.items()
            },
        },
        "candidates": {
            result.name: {
                view: {
                    "cv_roc_auc_ovr": scores.cv_mean["roc_auc_ovr"],
                    "test_roc_auc_ovr": scores.test["roc_auc_ovr"],
                    "test_macro_f1": scores.test["macro_f1"],
                }
                for view, scores in result.views.items()
            }
            for result in results
        },
    }


@dataclass(frozen=True)
class Trained:
    """A candidate's final model and its held-out evidence, which ensembles reuse."""

    model: Model
    held_out: HeldOut


def train_candidate(
    candidate: CandidateConfig, split: Split, folds: Folds, trained: dict[str, Trained]
) -> Trained:
    """Cross-validate a candidate on the training part and fit it on all of it. Ensembles
    reuse their members' fitted models and held-out predictions (`trained`, by name) instead
    of fitting them again: the same models and the same numbers, a fraction of the time."""
    features, target = split.train_features, split.train_target
    members = [trained[name] for name in candidate.members]
    if candidate.estimator == "field_router":
        router = build_model("field_router", (), candidate.params)
        router.with_fitted_members([member.model for member in members])
        routes = [fields for _, fields, _ in router.routes]
        return Trained(router, routed_held_out(routes, [m.held_out for m in members], features))
    if candidate.estimator == "soft_vote":
        probabilities = vote_probabilities([member.held_out for member in members])
        classes = members[0].held_out.classes
        model = assemble_soft_vote(
            [(name, member.model) for name, member in zip(candidate.members, members, strict=True)],
            lambda vote: decided(vote, candidate.decision, probabilities["full"], target),
        )
    else:
        probability_model = build_model(
            candidate.estimator, resolve_features(candidate.features), candidate.params
        )
        probabilities, classes = held_out_probabilities(probability_model, features, target, folds)
        model = build_model(
            candidate.estimator,
            resolve_features(candidate.features),
            candidate.params,
            candidate.decision,
        )
        if candidate.decision == "macro_f1":
            # The decision step learns its weights from this cross-validation's held-out
            # predictions, so the folds are fitted once, not once more inside the step.
            model.fit(features, target, classifier__held_out_probabilities=probabilities["full"])
        else:
            model.fit(features, target)
        predict_sequentially(model)
    return Trained(model, with_decision(probabilities, classes, target, folds, candidate.decision))


def decided(classifier: Any, decision: str, held_out: np.ndarray, target: pd.Series) -> Any:
    """A fitted classifier wrapped in its decision step, weights learnt on held-out rows."""
    if decision == "most_probable":
        return classifier
    return MacroF1Decision(clone(classifier)).around_fitted(classifier, held_out, target)


def candidate_result(
    name: str, trained: Trained, split: Split, folds: Folds, categories: list[str]
) -> CandidateResult:
    """A candidate's scores on both views: CV of the training part, and the test part once."""
    cv = cross_validated_scores(trained.held_out, split.train_target, folds)
    test = scores_on_views(trained.model, split.test_features, split.test_target, categories)
    return CandidateResult(
        name,
        {
            view: ViewScores(cv[view][0], cv[view][1], test[view][0], test[view][1])
            for view in VIEWS
        },
    )
