"""Loading the model to serve, from the registry or a local MLflow model directory."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import yaml
from mlflow.models import Model
from mlflow.tracking import MlflowClient
from sklearn.pipeline import Pipeline

from mlops_lab.explainability.transform import shap_explanation
from mlops_lab.prediction_app.compiled import CompiledModel, UnsupportedModel, compile_model
from mlops_lab.prediction_app.schema import Listing
from mlops_lab.prediction_app.transform import (
    format_predictions,
    payloads_to_frame,
    top_contributions,
)
from mlops_lab.training.transform import ordered_decision_weights, ordered_probabilities

log = logging.getLogger(__name__)

TOP_CONTRIBUTIONS = 5


class PipelinePredictor:
    """The logged Pipeline itself, for a model the compiler does not know (slower)."""

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline
        self.classes = np.asarray(pipeline.classes_)

    def predict_proba(self, records: list[dict[str, Any]]) -> np.ndarray:
        """Probabilities per listing, columns in `classes` order."""
        return self.pipeline.predict_proba(payloads_to_frame(records))


@dataclass(frozen=True)
class ServedModel:
    """A loaded price-category model and which registered version it is."""

    pipeline: Pipeline
    predictor: CompiledModel | PipelinePredictor
    uri: str
    name: str
    version: str
    categories: list[str]
    # Listings SHAP masks features with: the model's own logged input example.
    background: pd.DataFrame

    def predict(self, listings: list[Listing]) -> list[dict[str, Any]]:
        """Category and probabilities for each validated listing, in order."""
        return self.predict_listings(
            [listing.model_input() for listing in listings],
            [listing.id for listing in listings],
            explain=False,
        )

    def predict_listings(
        self, inputs: list[dict[str, Any]], ids: list[Any], explain: bool
    ) -> list[dict[str, Any]]:
        """Category and probabilities per listing; with `explain`, its top SHAP contributions."""
        probabilities = ordered_probabilities(
            self.predictor.predict_proba(inputs), list(self.predictor.classes), self.categories
        )
        predictions = format_predictions(
            ids,
            probabilities,
            self.categories,
            ordered_decision_weights(self.pipeline, self.categories),
        )
        if explain:
            explanation = shap_explanation(
                self.pipeline, payloads_to_frame(inputs), self.background, permutations=1, seed=0
            )
            for row, prediction in enumerate(predictions):
                prediction["explanation"] = top_contributions(
                    explanation, row, prediction["price_category"], TOP_CONTRIBUTIONS
                )
        return predictions


def choose_predictor(
    pipeline: Pipeline, background: pd.DataFrame
) -> CompiledModel | PipelinePredictor:
    """The compiled model if it gives the Pipeline's exact probabilities, else the Pipeline."""
    try:
        compiled = compile_model(pipeline)
    except UnsupportedModel as reason:
        log.warning("serving through the scikit-learn Pipeline (slower): %s", reason)
        return PipelinePredictor(pipeline)
    records = background.to_dict("records")
    if not np.array_equal(compiled.predict_proba(records), pipeline.predict_proba(background)):
        log.error("the compiled model disagrees with the Pipeline; serving the Pipeline (slower)")
        return PipelinePredictor(pipeline)
    return compiled


def resolve_version(uri: str) -> tuple[str, str]:
    """Registered name and version behind models:/name@alias or models:/name/version."""
    reference = uri.removeprefix("models:/")
    if "@" in reference:
        name, alias = reference.split("@", 1)
        return name, str(MlflowClient().get_model_version_by_alias(name, alias).version)
    name, _, version = reference.partition("/")
    return name, version


def registered_identity(model_dir: Path) -> tuple[str, str]:
    """Registered name and version of a downloaded model directory, or its folder name."""
    meta = model_dir / "registered_model_meta"
    if meta.is_file():
        fields = yaml.safe_load(meta.read_text())
        return str(fields["model_name"]), str(fields["model_version"])
    return model_dir.name, "unregistered"


def load_served_model(uri: str, categories: list[str]) -> ServedModel:
    """Load the model once, as the service does: a registry URI or a local model directory."""
    if uri.startswith("models:/"):
        name, version = resolve_version(uri)
        # Pin the version so an alias moving mid-load cannot mix two models.
        local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{version}"))
    else:
        local = Path(uri)
        name, version = registered_identity(local)
    pipeline = mlflow.sklearn.load_model(str(local))
    background = pd.DataFrame(Model.load(local).load_input_example(str(local)))
    unknown = sorted(set(pipeline.classes_) - set(categories))
    if unknown:
        raise ValueError(f"model {uri} predicts categories {unknown} not in {categories}")
    predictor = choose_predictor(pipeline, background)
    served = ServedModel(pipeline, predictor, uri, name, version, categories, background)
    # The first call compiles SHAP's kernels and warms caches: pay it before reporting ready.
    served.predict_listings(background.to_dict("records"), list(background.index), explain=True)
    log.info("loaded %s (%s v%s)", uri, name, version)
    return served
