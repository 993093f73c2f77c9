"""prediction_app: this run's registered model, loaded as the service loads it → its answers to
the example payloads. Promotion waits for these answers."""

from __future__ import annotations

import json
import logging

import mlflow

from mlops_lab.common.files import write_json_atomically
from mlops_lab.serving.loading import load_served_model
from mlops_lab.stages.context import StageContext
from mlops_lab.stages.prediction_app.transform import validated_payloads
from mlops_lab.tracking.runs import stage_run

log = logging.getLogger(__name__)


def run(context: StageContext) -> None:
    """Predict the configured example payloads with the challenger and record the answers."""
    settings = context.config.prediction_app
    challenger = json.loads(context.config.training.challenger_path.read_text())
    with stage_run(context.tracking, context.lineage, "prediction_app"):
        model = load_served_model(
            challenger["model_uri"], context.config.data_prep.price_categories
        )
        predictions = model.predict(validated_payloads(settings.payloads()))
        smoke = {
            "model_uri": challenger["model_uri"],
            "model_name": model.name,
            "model_version": model.version,
            "predictions": predictions,
        }
        mlflow.log_params({"model_uri": challenger["model_uri"], "model_version": model.version})
        mlflow.log_dict(smoke, "prediction_smoke.json")
        write_json_atomically(settings.output_path, smoke)
        for prediction in predictions:
            log.info("listing %s → %s", prediction["id"], json.dumps(prediction["probabilities"]))
        print(
            json.dumps(
                [{"id": p["id"], "price_category": p["price_category"]} for p in predictions]
            )
        )
