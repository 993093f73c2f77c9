"""How models are scored: folds of the training part, held-out predictions on both views,
the scores, and the one selection score that compares candidates and champions.

Every model is scored on two views of the same listings: *full*, every field the API accepts,
and *required*, only the API's required fields, every optional field absent exactly as the
API passes an absent field to the model. Callers mostly send the required fields, so what is
measured on that view is what they get.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

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
from sklearn.model_selection import StratifiedKFold

from mlops_lab.config import SelectionConfig
from mlops_lab.kernel.decision import (
    macro_f1_weights,
    ordered_probabilities,
    row_decision_weights,
    weighted_labels,
)
from mlops_lab.kernel.features import conform_listings, present_fields
from mlops_lab.kernel.listing import OPTIONAL_FIELDS, VIEWS
from mlops_lab.kernel.modelling import Model, predict_sequentially
from mlops_lab.kernel.routing import route_listings

Scores = dict[str, float]
Folds = list[tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class HeldOut:
    """A candidate's cross-validated evidence on the training part: for each view, every row's
    probabilities from the fold model that did not see it, and the weights that label it."""

    probabilities: dict[str, np.ndarray]
    weights: dict[str, np.ndarray]
    # Probability columns, in the models' (sorted) class order.
    classes: list[str]


def required_view(listings: pd.DataFrame) -> pd.DataFrame:
    """The listings as a caller sending only the required fields gives them to the model."""
    return listings.drop(columns=[name for name in OPTIONAL_FIELDS if name in listings.columns])


def view_of(listings: pd.DataFrame, view: str) -> pd.DataFrame:
    """The listings as seen on one view: 'full' or 'required'."""
    return listings if view == "full" else required_view(listings)


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


def fold_prediction(
    model: Model,
    features: pd.DataFrame,
    target: pd.Series,
    fold: tuple[np.ndarray, np.ndarray],
    views: tuple[str, ...],
) -> FoldPrediction:
    """One fold's probabilities, on each view, from the model fitted on the other folds."""
    train_rows, validation_rows = fold
    fold_model = clone(model).fit(features.iloc[train_rows], target.iloc[train_rows])
    # Fit on all cores, predict on one: the scores then repeat to the last bit.
    predict_sequentially(fold_model)
    validation = features.iloc[validation_rows]
    return FoldPrediction(
        validation_rows,
        {view: fold_model.predict_proba(view_of(validation, view)) for view in views},
        list(fold_model.classes_),
    )


def fold_predictions(
    model: Model,
    features: pd.DataFrame,
    target: pd.Series,
    folds: Folds,
    views: tuple[str, ...] = ("full",),
) -> Iterator[FoldPrediction]:
    """Each fold's probabilities, on each view, one fold after another."""
    for fold in folds:
        yield fold_prediction(model, features, target, fold, views)


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
    return gathered(list(fold_predictions(model, features, target, folds, VIEWS)), len(features))


def gathered(
    predictions: list[FoldPrediction], rows: int
) -> tuple[dict[str, np.ndarray], list[str]]:
    """The folds' probabilities put back in training-row order, and their class order."""
    classes = predictions[0].classes
    probabilities = {view: np.empty((rows, len(classes))) for view in predictions[0].probabilities}
    for fold in predictions:
        for view, fold_rows in fold.probabilities.items():
            probabilities[view][fold.validation_rows] = fold_rows
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
