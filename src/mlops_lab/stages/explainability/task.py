"""explainability: this run's model + training table → SHAP per listing field and evaluation
plots on both views under reports/."""

from __future__ import annotations

import json
import logging
import time

import mlflow
import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

from mlops_lab.common.files import atomic_path, save_figure, write_json_atomically
from mlops_lab.evaluation.prepared import read_split
from mlops_lab.evaluation.scores import (
    model_answers,
    per_class_metrics,
    view_of,
)
from mlops_lab.kernel.decision import ordered_probabilities, weighted_labels
from mlops_lab.kernel.features import conform_listings
from mlops_lab.kernel.listing import VIEWS
from mlops_lab.serving.attribution import explain_listings
from mlops_lab.serving.compiled import compile_model
from mlops_lab.stages.context import StageContext
from mlops_lab.stages.explainability.transform import (
    beeswarm_figure,
    confusion_figure,
    expected_calibration_error,
    mean_abs_shap,
    mean_abs_shap_figure,
    normalized_confusion,
    per_class_figure,
    reliability_figure,
    reliability_table,
)
from mlops_lab.tracking.registry import load_logged_model
from mlops_lab.tracking.runs import stage_run

log = logging.getLogger(__name__)

RELIABILITY_BINS = 10
TOP_FIELDS = 5


def run(context: StageContext) -> None:
    """Explain this run's model on held-out listings, per listing field, and chart how it does
    per category, on both views."""
    config = context.config
    settings = config.explainability
    categories = config.data_prep.price_categories
    reports = settings.reports
    challenger = json.loads(config.training.challenger_path.read_text())
    model = load_logged_model(str(config.training.model_dir))
    split = read_split(config, "explaining")

    with stage_run(
        context.tracking,
        context.lineage,
        "explainability",
        tags={"mlops_lab.training_run_id": challenger["run_id"]},
    ):
        predicted, confusion, per_class, reliability, calibration_error = {}, {}, {}, {}, {}
        for view in VIEWS:
            answers = model_answers(model, view_of(split.test_features, view), categories)
            predicted[view] = weighted_labels(
                answers.probabilities, answers.weights, np.asarray(categories)
            )
            confusion[view] = normalized_confusion(split.test_target, predicted[view], categories)
            per_class[view] = per_class_metrics(
                split.test_target, answers.probabilities, categories, answers.weights
            )
            reliability[view] = reliability_table(
                split.test_target, answers.probabilities, categories, RELIABILITY_BINS
            )
            calibration_error[view] = expected_calibration_error(reliability[view])

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
        importance = {view: mean_abs_shap(explanations[view], categories) for view in VIEWS}

        written = [
            save_figure(mean_abs_shap_figure(importance), reports.shap_mean_abs),
            save_figure(beeswarm_figure(explanations["full"], categories), reports.shap_beeswarm),
            save_figure(confusion_figure(confusion), reports.confusion_matrix),
            save_figure(per_class_figure(per_class), reports.per_class_metrics),
            save_figure(reliability_figure(reliability, calibration_error), reports.reliability),
        ]
        with atomic_path(reports.test_predictions) as temporary:
            pd.DataFrame(
                {
                    "actual": split.test_target.to_numpy(),
                    **{f"predicted_{view}": predicted[view] for view in VIEWS},
                }
            ).to_csv(temporary, index=False)
        with atomic_path(reports.shap_mean_abs_table) as temporary:
            pd.concat([table.assign(view=view) for view, table in importance.items()]).round(
                6
            ).to_csv(temporary, index_label="field")
        write_json_atomically(
            settings.metrics_path,
            {
                view: {
                    "top_fields": list(importance[view].index[:TOP_FIELDS]),
                    "recall": {n: round(per_class[view][n]["recall"], 6) for n in categories},
                    "precision": {n: round(per_class[view][n]["precision"], 6) for n in categories},
                    "expected_calibration_error": {
                        n: round(calibration_error[view][n], 6) for n in categories
                    },
                }
                for view in VIEWS
            },
        )

        client = MlflowClient()
        for path in [*written, reports.shap_mean_abs_table]:
            mlflow.log_artifact(str(path))
            # The plots also belong to the run that made the model, where the registry links.
            client.log_artifact(challenger["run_id"], str(path), artifact_path="explainability")
        for view in VIEWS:
            mlflow.log_metrics(
                {f"test_{view}_recall_{n}": v["recall"] for n, v in per_class[view].items()}
            )
            mlflow.log_metrics(
                {
                    f"test_{view}_calibration_error_{n}": v
                    for n, v in calibration_error[view].items()
                }
            )
        log.info("wrote %s", ", ".join(str(path) for path in written))
