"""explainability: this run's model + training table → SHAP per listing field and evaluation
plots on both views under reports/."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

from mlops_lab.common.files import atomic_path, save_figure, write_json_atomically
from mlops_lab.config import ExplainabilityConfig, ExplainabilityReports
from mlops_lab.evaluation.prepared import Split, read_split
from mlops_lab.evaluation.scores import (
    model_answers,
    per_class_metrics,
    view_of,
)
from mlops_lab.kernel.decision import ordered_probabilities, weighted_labels
from mlops_lab.kernel.features import conform_listings
from mlops_lab.kernel.listing import VIEWS
from mlops_lab.kernel.modelling import Model
from mlops_lab.serving.attribution import Attributions, explain_listings
from mlops_lab.serving.compiled import compile_model
from mlops_lab.stages.context import StageContext
from mlops_lab.stages.explainability.transform import (
    beeswarm_figure,
    confusion_figure,
    expected_calibration_error,
    mean_abs_shap,
    mean_abs_shap_figure,
    metrics_document,
    normalized_confusion,
    per_class_figure,
    reliability_figure,
    reliability_table,
)
from mlops_lab.tracking.registry import load_logged_model
from mlops_lab.tracking.runs import stage_run

log = logging.getLogger(__name__)

RELIABILITY_BINS = 10


@dataclass
class Evaluation:
    """How the model does on the held-out listings, per view."""

    predicted: dict[str, np.ndarray] = field(default_factory=dict)
    confusion: dict[str, pd.DataFrame] = field(default_factory=dict)
    per_class: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    reliability: dict[str, pd.DataFrame] = field(default_factory=dict)
    calibration_error: dict[str, dict[str, float]] = field(default_factory=dict)


def evaluate(model: Model, split: Split, categories: list[str]) -> Evaluation:
    """Labels, confusion, per-class scores and reliability on the test part, on both views."""
    evaluation = Evaluation()
    truth = split.test_target
    for view in VIEWS:
        answers = model_answers(model, view_of(split.test_features, view), categories)
        labels = weighted_labels(answers.probabilities, answers.weights, np.asarray(categories))
        evaluation.predicted[view] = labels
        evaluation.confusion[view] = normalized_confusion(truth, labels, categories)
        evaluation.per_class[view] = per_class_metrics(
            truth, answers.probabilities, categories, answers.weights
        )
        reliability = reliability_table(truth, answers.probabilities, categories, RELIABILITY_BINS)
        evaluation.reliability[view] = reliability
        evaluation.calibration_error[view] = expected_calibration_error(reliability)
    return evaluation


def explain(
    model: Model, split: Split, settings: ExplainabilityConfig, categories: list[str]
) -> dict[str, Attributions]:
    """SHAP values per listing field for a sample of test listings, on both views, through the
    fast path the service answers with."""
    sample = split.test_features.sample(
        n=min(settings.shap_sample_size, len(split.test_features)),
        random_state=settings.random_state,
    )
    background = conform_listings(
        split.train_features.sample(
            n=min(settings.shap_background_size, len(split.train_features)),
            random_state=settings.random_state,
        )
    )
    compiled = compile_model(model, parallel=True)
    classes = list(compiled.classes)

    def answer(masked: dict[str, np.ndarray]) -> np.ndarray:
        return ordered_probabilities(compiled.answer_columns(masked)[0], classes, categories)

    log.info(
        "SHAP: explaining %d test listings on both views against %d background listings…",
        len(sample),
        len(background["room_type"]),
    )
    started = time.perf_counter()
    explanations = {
        view: explain_listings(
            answer,
            conform_listings(view_of(sample, view)),
            background,
            categories,
            settings.shap_permutations,
            settings.random_state,
        )
        for view in VIEWS
    }
    log.info("SHAP done in %.1f s", time.perf_counter() - started)
    return explanations


def write_reports(
    evaluation: Evaluation,
    explanations: dict[str, Attributions],
    importance: dict[str, pd.DataFrame],
    truth: pd.Series,
    reports: ExplainabilityReports,
    categories: list[str],
) -> list[Path]:
    """Draw the figures and write the tables; returns the figures' paths."""
    written = [
        save_figure(mean_abs_shap_figure(importance), reports.shap_mean_abs),
        save_figure(beeswarm_figure(explanations["full"], categories), reports.shap_beeswarm),
        save_figure(confusion_figure(evaluation.confusion), reports.confusion_matrix),
        save_figure(per_class_figure(evaluation.per_class), reports.per_class_metrics),
        save_figure(
            reliability_figure(evaluation.reliability, evaluation.calibration_error),
            reports.reliability,
        ),
    ]
    predictions = {f"predicted_{view}": evaluation.predicted[view] for view in VIEWS}
    with atomic_path(reports.test_predictions) as temporary:
        pd.DataFrame({"actual": truth.to_numpy(), **predictions}).to_csv(temporary, index=False)
    importance_table = pd.concat([table.assign(view=view) for view, table in importance.items()])
    with atomic_path(reports.shap_mean_abs_table) as temporary:
        importance_table.round(6).to_csv(temporary, index_label="field")
    return written


def log_results(evaluation: Evaluation, artifacts: list[Path], training_run_id: str) -> None:
    """Log the reports to this run and to the run that made the model, and the metrics."""
    client = MlflowClient()
    for path in artifacts:
        mlflow.log_artifact(str(path))
        # The plots also belong to the run that made the model, where the registry links.
        client.log_artifact(training_run_id, str(path), artifact_path="explainability")
    for view in VIEWS:
        mlflow.log_metrics(
            {f"test_{view}_recall_{n}": v["recall"] for n, v in evaluation.per_class[view].items()}
        )
        mlflow.log_metrics(
            {
                f"test_{view}_calibration_error_{n}": v
                for n, v in evaluation.calibration_error[view].items()
            }
        )


def run(context: StageContext) -> None:
    """Explain this run's model on held-out listings, per listing field, and chart how it does
    per category, on both views."""
    config = context.config
    settings = config.explainability
    categories = config.data_prep.price_categories
    challenger = json.loads(config.training.challenger_path.read_text())
    model = load_logged_model(str(config.training.model_dir))
    split = read_split(config, "explaining")
    with stage_run(
        context.tracking,
        context.lineage,
        "explainability",
        tags={"mlops_lab.training_run_id": challenger["run_id"]},
    ):
        evaluation = evaluate(model, split, categories)
        explanations = explain(model, split, settings, categories)
        importance = {view: mean_abs_shap(explanations[view], categories) for view in VIEWS}
        written = write_reports(
            evaluation, explanations, importance, split.test_target, settings.reports, categories
        )
        write_json_atomically(
            settings.metrics_path,
            metrics_document(
                importance, evaluation.per_class, evaluation.calibration_error, categories
            ),
        )
        log_results(
            evaluation, [*written, settings.reports.shap_mean_abs_table], challenger["run_id"]
        )
        log.info("wrote %s", ", ".join(str(path) for path in written))
