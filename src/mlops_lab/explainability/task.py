"""explainability: trained model + training table → SHAP and evaluation plots under reports/."""

from __future__ import annotations

import json
import logging
import time

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from mlops_lab.context import StageContext
from mlops_lab.decision import weighted_labels
from mlops_lab.explainability.transform import (
    beeswarm_figure,
    confusion_figure,
    expected_calibration_error,
    mean_abs_shap,
    mean_abs_shap_figure,
    normalized_confusion,
    per_class_figure,
    reliability_figure,
    reliability_table,
    shap_explanation,
)
from mlops_lab.files import atomic_path, save_figure, write_json_atomically
from mlops_lab.tracking import stage_run
from mlops_lab.training.transform import (
    ordered_decision_weights,
    ordered_probabilities,
    per_class_metrics,
    split_like_notebook,
)

log = logging.getLogger(__name__)

TOP_FEATURES = 15
RELIABILITY_BINS = 10


def run(context: StageContext) -> None:
    """Explain the trained model on held-out listings and chart how it does per category."""
    config = context.config
    settings = config.explainability
    categories = config.data_prep.price_categories
    reports = settings.reports_dir
    registration = json.loads(config.training.registration_path.read_text())
    model = mlflow.sklearn.load_model(str(config.training.model_dir))
    listings = pd.read_parquet(config.data.prepared_path)
    split = split_like_notebook(
        listings, config.training.test_size, config.training.split_random_state
    )

    with stage_run(
        context.tracking,
        context.lineage,
        "explainability",
        tags={"mlops_lab.training_run_id": registration["run_id"]},
    ):
        probabilities = ordered_probabilities(
            model.predict_proba(split.test_features), list(model.classes_), categories
        )
        weights = ordered_decision_weights(model, categories)
        predicted = weighted_labels(probabilities, weights, pd.Series(categories).to_numpy())
        confusion = normalized_confusion(split.test_target, predicted, categories)
        per_class = per_class_metrics(split.test_target, probabilities, categories, weights)
        reliability = reliability_table(
            split.test_target, probabilities, categories, RELIABILITY_BINS
        )
        calibration_error = expected_calibration_error(reliability)

        sample = split.test_features.sample(
            n=min(settings.shap_sample_size, len(split.test_features)),
            random_state=settings.random_state,
        )
        background = split.train_features.sample(
            n=min(settings.shap_background_size, len(split.train_features)),
            random_state=settings.random_state,
        )
        log.info(
            "SHAP: explaining %d test listings against %d background listings…",
            len(sample),
            len(background),
        )
        started = time.perf_counter()
        explanation = shap_explanation(
            model, sample, background, settings.shap_permutations, settings.random_state
        )
        log.info("SHAP done in %.1f s", time.perf_counter() - started)
        importance = mean_abs_shap(explanation, categories)

        written = [
            save_figure(
                mean_abs_shap_figure(importance, TOP_FEATURES), reports / "shap_mean_abs.png"
            ),
            save_figure(
                beeswarm_figure(explanation, categories, TOP_FEATURES),
                reports / "shap_beeswarm.png",
            ),
            save_figure(confusion_figure(confusion), reports / "confusion_matrix.png"),
            save_figure(per_class_figure(per_class), reports / "per_class_metrics.png"),
            save_figure(
                reliability_figure(reliability, calibration_error), reports / "reliability.png"
            ),
        ]
        with atomic_path(reports / "test_predictions.csv") as temporary:
            pd.DataFrame({"actual": split.test_target.to_numpy(), "predicted": predicted}).to_csv(
                temporary, index=False
            )
        with atomic_path(reports / "shap_mean_abs.csv") as temporary:
            importance.round(6).to_csv(temporary, index_label="feature")
        write_json_atomically(
            settings.metrics_path,
            {
                "top_features": list(importance.index[:5]),
                "recall": {name: round(per_class[name]["recall"], 6) for name in categories},
                "precision": {name: round(per_class[name]["precision"], 6) for name in categories},
                "expected_calibration_error": {
                    name: round(calibration_error[name], 6) for name in categories
                },
            },
        )

        client = MlflowClient()
        for path in [*written, reports / "shap_mean_abs.csv"]:
            mlflow.log_artifact(str(path))
            # The plots also belong to the run that made the model, where the registry links.
            client.log_artifact(registration["run_id"], str(path), artifact_path="explainability")
        mlflow.log_metrics({f"test_recall_{n}": v["recall"] for n, v in per_class.items()})
        mlflow.log_metrics({f"test_calibration_error_{n}": v for n, v in calibration_error.items()})
        log.info("wrote %s", ", ".join(str(path) for path in written))
