"""Loading the model to serve, from the registry or a local MLflow model directory."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient
from sklearn.pipeline import Pipeline

from mlops_lab.prediction_app.transform import format_predictions, payloads_to_frame
from mlops_lab.training.transform import ordered_probabilities

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedModel:
    """A loaded price-category Pipeline and which registered version it is."""

    pipeline: Pipeline
    uri: str
    name: str
    version: str
    categories: list[str]

    def probabilities(self, listings: pd.DataFrame) -> np.ndarray:
        """Class probabilities, columns in category order."""
        return ordered_probabilities(
            self.pipeline.predict_proba(listings), list(self.pipeline.classes_), self.categories
        )

    def predict(self, payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Category and probabilities for each listing payload, in order."""
        frame = payloads_to_frame(payloads)
        ids = [payload.get("id") for payload in payloads]
        return format_predictions(ids, self.probabilities(frame), self.categories)


def resolve_version(uri: str) -> tuple[str, str]:
    """Registered name and version behind models:/name@alias or models:/name/version."""
    reference = uri.removeprefix("models:/")
    if "@" in reference:
        name, alias = reference.split("@", 1)
        return name, str(MlflowClient().get_model_version_by_alias(name, alias).version)
    name, _, version = reference.partition("/")
    return name, version


def load_served_model(uri: str, categories: list[str]) -> ServedModel:
    """Load the model once, as the service does: a registry URI or a local model directory."""
    if uri.startswith("models:/"):
        name, version = resolve_version(uri)
        # Pin the version so an alias moving mid-load cannot mix two models.
        pipeline = mlflow.sklearn.load_model(f"models:/{name}/{version}")
    else:
        path = Path(uri)
        pipeline = mlflow.sklearn.load_model(str(path))
        name, version = path.name, "local"
    unknown = sorted(set(pipeline.classes_) - set(categories))
    if unknown:
        raise ValueError(f"model {uri} predicts categories {unknown} not in {categories}")
    log.info("loaded %s (%s v%s)", uri, name, version)
    return ServedModel(pipeline, uri, name, version, categories)
