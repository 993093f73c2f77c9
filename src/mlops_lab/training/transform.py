"""Pure functions for splitting, scoring and choosing price-category models."""

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
from sklearn.pipeline import Pipeline

from mlops_lab.decision import decision_weights, macro_f1_weights, weighted_labels
from mlops_lab.features import predict_sequentially
from mlops_lab.listing import BOROUGH_ALIAS, MODEL_INPUT_FIELDS, NUMERIC_FIELDS, REQUIRED_FIELDS

TARGET = "price_category"


@dataclass(frozen=True)
class Split:
    train_features: pd.DataFrame
    test_features: pd.DataFrame
    train_target: pd.Series
    test_target: pd.Series


@dataclass
class CandidateResult:
    name: str
    cv_mean: dict[str, float]
    cv_std: dict[str, float]
    test: dict[str, float]
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: float = 0.0


def split_like_notebook(listings: pd.DataFrame, test_size: float, random_state: int) -> Split:
    """The notebook's train_test_split (not stratified) over model inputs and price_category."""
    features = listings[["id", *MODEL_INPUT_FIELDS]]
    train_x, test_x, train_y, test_y = train_test_split(
        features, listings[TARGET], test_size=test_size, random_state=random_state
    )
    return Split(train_x, test_x, train_y, test_y)


@dataclass(frozen=True)
class FoldPrediction:
    validation_rows: np.ndarray
    # Columns in `classes` order (the fold model's, sorted).
    probabilities: np.ndarray
    classes: list[str]
    weights: np.ndarray


def flat_params(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested parameters (a soft vote's members) as one level of dotted names."""
    flat: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, dict):
            flat.update(flat_params(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = value
    return flat


def fold_predictions(
    model: Pipeline, features: pd.DataFrame, target: pd.Series, folds: int, random_state: int
) -> Iterator[FoldPrediction]:
    """Each stratified fold's probabilities from the model fitted on the other folds, in turn."""
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=random_state)
    for train_rows, validation_rows in splitter.split(features, target):
        fold_model = clone(model).fit(features.iloc[train_rows], target.iloc[train_rows])
        # Fit on all cores, predict on one: the scores then repeat to the last bit.
        probabilities = predict_sequentially(fold_model).predict_proba(
            features.iloc[validation_rows]
        )
        yield FoldPrediction(
            validation_rows,
            probabilities,
            list(fold_model.classes_),
            decision_weights(fold_model[-1]),
        )


def fold_scores(
    model: Pipeline, features: pd.DataFrame, target: pd.Series, folds: int, random_state: int
) -> Iterator[dict[str, float]]:
    """Every score_probabilities metric of each stratified fold in turn, as it is scored."""
    for fold in fold_predictions(model, features, target, folds, random_state):
        yield score_probabilities(
            target.iloc[fold.validation_rows], fold.probabilities, fold.classes, fold.weights
        )


def cross_validate_with_decision(
    model: Pipeline, features: pd.DataFrame, target: pd.Series, folds: int, random_state: int
) -> tuple[dict[str, float], dict[str, float], np.ndarray]:
    """Mean and spread over folds of a probability model's scores, each fold labelled by
    macro-F1 weights learnt on the other folds' held-out predictions; and every row's
    held-out probabilities (sorted class order), for the final model's decision step."""
    predictions = list(fold_predictions(model, features, target, folds, random_state))
    classes = predictions[0].classes
    held_out = np.empty((len(features), len(classes)))
    for fold in predictions:
        held_out[fold.validation_rows] = fold.probabilities
    truth = target.to_numpy()
    scores = []
    for fold in predictions:
        others = np.setdiff1d(np.arange(len(features)), fold.validation_rows)
        weights = macro_f1_weights(held_out[others], truth[others], np.asarray(classes))
        scores.append(
            score_probabilities(
                target.iloc[fold.validation_rows], fold.probabilities, classes, weights
            )
        )
    means, spreads = summarize_folds(scores)
    return means, spreads, held_out


def summarize_folds(
    scores: list[dict[str, float]],
) -> tuple[dict[str, float], dict[str, float]]:
    """Mean and standard deviation over folds of each metric."""
    names = scores[0].keys()
    means = {name: float(np.mean([fold[name] for fold in scores])) for name in names}
    spreads = {name: float(np.std([fold[name] for fold in scores])) for name in names}
    return means, spreads


def cross_validate_model(
    model: Pipeline, features: pd.DataFrame, target: pd.Series, folds: int, random_state: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Mean and standard deviation over stratified folds of every score_probabilities metric."""
    return summarize_folds(list(fold_scores(model, features, target, folds, random_state)))


def score_probabilities(
    truth: pd.Series,
    probabilities: np.ndarray,
    classes: list[str],
    weights: np.ndarray | None = None,
) -> dict[str, float]:
    """Accuracy, one-vs-rest ROC AUC, macro F1 and log loss of predicted class probabilities,
    labelled by the model's decision weights (None: the most probable category)."""
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
    """Probability columns reordered from the model's class order to the category order."""
    position = {name: index for index, name in enumerate(model_classes)}
    return probabilities[:, [position[name] for name in categories]]


def ordered_decision_weights(model: Pipeline, categories: list[str]) -> np.ndarray:
    """The fitted model's decision weights, in category order."""
    weights = decision_weights(model[-1])[np.newaxis, :]
    return ordered_probabilities(weights, list(model.classes_), categories)[0]


def choose_winner(results: list[CandidateResult], metric: str) -> CandidateResult:
    """The candidate with the best mean CV score; the earlier one in config on a tie."""
    return max(results, key=lambda result: (result.cv_mean[metric], -results.index(result)))


def beats_champion(new_score: float, champion_score: float | None) -> bool:
    """Whether a new model takes the champion alias: strictly better, or no champion yet."""
    return champion_score is None or new_score > champion_score


def input_field_types() -> dict[str, tuple[str, bool]]:
    """Each field the model accepts, with its MLflow type and whether callers must send it."""
    fields: dict[str, tuple[str, bool]] = {"id": ("long", False)}
    for name in MODEL_INPUT_FIELDS:
        kind = "double" if name in NUMERIC_FIELDS else "string"
        # borough may come under the challenge's name instead, so neither is enforced here.
        fields[name] = (kind, name in REQUIRED_FIELDS and name != "borough")
    fields[BOROUGH_ALIAS] = ("string", False)
    return fields


def results_table(results: list[CandidateResult], winner: str, metric: str) -> str:
    """A fixed-width text table of every candidate's CV and test scores."""
    header = (
        f"{'candidate':<28} {'CV ' + metric:>22} {'test acc':>9} {'ROC AUC':>8} "
        f"{'macro F1':>9} {'log loss':>9} {'time':>7}"
    )
    lines = [header, "-" * len(header)]
    for result in results:
        marker = "  ← winner" if result.name == winner else ""
        lines.append(
            f"{result.name:<28} "
            f"{result.cv_mean[metric]:>14.4f} ± {result.cv_std[metric]:.4f} "
            f"{result.test['accuracy']:>9.4f} {result.test['roc_auc_ovr']:>8.4f} "
            f"{result.test['macro_f1']:>9.4f} {result.test['log_loss']:>9.4f} "
            f"{result.seconds:>6.1f}s{marker}"
        )
    return "\n".join(lines)


def candidates_frame(results: list[CandidateResult], winner: str) -> pd.DataFrame:
    """One row per candidate with its CV and test scores, for the candidates table and plot."""
    rows = []
    for result in results:
        row: dict[str, object] = {"candidate": result.name, "winner": result.name == winner}
        row.update({f"cv_{name}": value for name, value in result.cv_mean.items()})
        row.update({f"cv_{name}_std": value for name, value in result.cv_std.items()})
        row.update({f"test_{name}": value for name, value in result.test.items()})
        rows.append(row)
    return pd.DataFrame(rows).round(6)
