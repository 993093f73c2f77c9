"""Loading the model to serve, from the registry or a local MLflow model directory, and keeping
the service up while it cannot be loaded."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import Model as MlflowModel
from mlflow.tracking import MlflowClient

from mlops_lab.kernel.attribution import explain_listings, top_contributions
from mlops_lab.kernel.compiled import CompiledModel, RowThreads, UnsupportedModel, compile_model
from mlops_lab.kernel.decision import row_decision_weights
from mlops_lab.kernel.errors import UserError
from mlops_lab.kernel.evaluation import ordered_probabilities
from mlops_lab.kernel.features import Columns, conform_listings, conform_records, present_fields
from mlops_lab.kernel.files import replace_directory_atomically
from mlops_lab.kernel.modelling import Model
from mlops_lab.kernel.registry import local_version
from mlops_lab.service.answers import format_predictions
from mlops_lab.service.metrics import ServiceMetrics
from mlops_lab.service.schema import Listing
from mlops_lab.service.settings import ServiceSettings
from mlops_lab.service.threads import leave_signals_to_the_main_thread

log = logging.getLogger(__name__)

TOP_CONTRIBUTIONS = 5


class ModelNotFound(UserError, FileNotFoundError):
    """A local model folder that holds no MLflow model."""


class PipelinePredictor:
    """The logged model itself, for a model the compiler does not know (slower)."""

    def __init__(self, model: Model):
        self.model = model
        self.classes = np.asarray(model.classes_)

    def answer_columns(self, listings: Columns) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities and label weights per listing, columns in `classes` order."""
        frame = pd.DataFrame(listings)
        return self.model.predict_proba(frame), row_decision_weights(self.model, frame)


@dataclass(frozen=True)
class ServedModel:
    """A loaded price-category model and which registered version it is."""

    model: Model
    predictor: CompiledModel | PipelinePredictor
    uri: str
    name: str
    version: str
    categories: list[str]
    # Listings SHAP masks fields with: the complete listings of the model's own input example.
    background: Columns
    # Why this is the copy last loaded from the registry rather than what it names now ("" if
    # it is fresh).
    stale: str = ""

    def answer(self, listings: Columns) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities and label weights per listing, columns in category order."""
        probabilities, weights = self.predictor.answer_columns(listings)
        classes = list(self.predictor.classes)
        return (
            ordered_probabilities(probabilities, classes, self.categories),
            ordered_probabilities(np.asarray(weights), classes, self.categories),
        )

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
        """Category and probabilities per listing; with `explain`, the listing fields that
        moved its category's probability most (SHAP, through the same fast path)."""
        listings = conform_records(inputs)
        probabilities, weights = self.answer(listings)
        predictions = format_predictions(ids, probabilities, self.categories, weights)
        if explain:
            explanation = explain_listings(
                lambda masked: self.answer(masked)[0],
                listings,
                self.background,
                self.categories,
                permutations=1,
                seed=0,
            )
            for row, prediction in enumerate(predictions):
                prediction["explanation"] = top_contributions(
                    explanation, listings, row, prediction["price_category"], TOP_CONTRIBUTIONS
                )
        return predictions


def choose_predictor(
    model: Model,
    example: pd.DataFrame,
    parallel: bool = False,
    threads: RowThreads | None = None,
) -> CompiledModel | PipelinePredictor:
    """The compiled model if it gives the model's exact answers, else the model itself."""
    try:
        compiled = compile_model(model, parallel, threads)
    except UnsupportedModel as reason:
        log.warning("serving through the scikit-learn model (slower): %s", reason)
        return PipelinePredictor(model)
    probabilities, weights = compiled.answer_columns(conform_records(example.to_dict("records")))
    if not (
        np.array_equal(probabilities, model.predict_proba(example))
        and np.array_equal(weights, row_decision_weights(model, example))
    ):
        log.error("the compiled model disagrees with the model; serving the model (slower)")
        return PipelinePredictor(model)
    return compiled


def resolve_version(uri: str) -> tuple[str, str]:
    """Registered name and version behind models:/name@alias or models:/name/version."""
    reference = uri.removeprefix("models:/")
    if "@" in reference:
        name, alias = reference.split("@", 1)
        return name, str(MlflowClient().get_model_version_by_alias(name, alias).version)
    name, _, version = reference.partition("/")
    return name, version


def complete_listings(example: pd.DataFrame) -> Columns:
    """The listings of a model's input example that carry every field (all, if none does)."""
    listings = conform_listings(example)
    complete = np.logical_and.reduce(list(present_fields(listings).values()))
    rows = complete if complete.any() else np.ones(len(example), dtype=bool)
    return {name: values[rows] for name, values in listings.items()}


def cached_copy(cache_dir: Path, uri: str) -> Path:
    """Where the copy last loaded from a registry URI is kept."""
    return cache_dir / uri.removeprefix("models:/").replace("/", "_")


def fetch(uri: str, cache_dir: Path | None, fall_back: bool) -> tuple[Path, str, str, str]:
    """A registry model's local files, name and version, and "" or why they are the copy
    last loaded instead: a registry that cannot be reached does not take the model away.
    Without a `cache_dir` nothing is kept; without `fall_back` nothing is fallen back on."""
    try:
        name, version = resolve_version(uri)
        # Pin the version so an alias moving mid-load cannot mix two models.
        local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{version}"))
    except Exception as error:  # any failure to fetch falls back to the copy, if there is one
        identity = None if cache_dir is None else local_version(cached_copy(cache_dir, uri))
        if cache_dir is None or identity is None or not fall_back:
            raise
        kept = cached_copy(cache_dir, uri)
        reason = (
            f"the registry cannot be reached ({type(error).__name__}); serving the copy last loaded"
        )
        log.warning("registry unreachable", extra={"model_uri": uri, "problem": str(error)})
        return kept, *identity, reason
    if cache_dir is not None:
        replace_directory_atomically(
            cached_copy(cache_dir, uri), lambda path: shutil.copytree(local, path)
        )
    return local, name, version, ""


def load_served_model(
    uri: str,
    categories: list[str],
    cache_dir: Path | None = None,
    fall_back: bool = True,
    parallel: bool = False,
    threads: RowThreads | None = None,
) -> ServedModel:
    """Load the model once, as the service does: a registry URI (its last copy in `cache_dir`
    when the registry cannot be reached) or a local model directory. With `parallel`, large
    batches use every core (batch scoring; never in the service's threads); with `threads`,
    they are spread over those (the service's)."""
    stale = ""
    if uri.startswith("models:/"):
        local, name, version, stale = fetch(uri, cache_dir, fall_back)
    else:
        local = Path(uri)
        if not (local / "MLmodel").is_file():
            raise ModelNotFound(
                f"no model at {local}: `dvc repro` (or `make run`) trains one and puts the "
                "champion there; MODEL_URI or --model-uri names another"
            )
        name, version = local_version(local) or (local.name, "unregistered")
    model = mlflow.sklearn.load_model(str(local))
    example = pd.DataFrame(MlflowModel.load(local).load_input_example(str(local)))
    unknown = sorted(set(model.classes_) - set(categories))
    if unknown:
        raise ValueError(f"model {uri} predicts categories {unknown} not in {categories}")
    predictor = choose_predictor(model, example, parallel, threads)
    served = ServedModel(
        model, predictor, uri, name, version, categories, complete_listings(example), stale
    )
    # The first call compiles the tree walk and SHAP's code: pay it before reporting ready.
    served.predict_listings(example.to_dict("records"), list(example.index), explain=True)
    log.info("loaded %s (%s v%s)", uri, name, version)
    return served


@dataclass
class ModelSlot:
    """The loaded model, or why there is none yet; filled by a background loader."""

    model: ServedModel | None = None
    problem: str = "loading"
    ready: threading.Event = field(default_factory=threading.Event)


def try_loading(
    settings: ServiceSettings,
    slot: ModelSlot,
    metrics: ServiceMetrics,
    threads: RowThreads | None = None,
) -> bool:
    """Load the model into the slot; on failure log why (with the traceback) and keep going.
    True once the slot holds a fresh model (not a stale copy). A slot that holds the copy
    already is refilled only from the registry."""
    # A registry URI is looked up where the stages registered it.
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    try:
        model = load_served_model(
            settings.model_uri,
            list(settings.categories),
            settings.model_cache_dir,
            fall_back=slot.model is None,
            threads=threads,
        )
    except Exception as error:  # any failure leaves the service up, and not ready if empty
        problem = f"cannot load model {settings.model_uri}: {error}"
        slot.problem = slot.model.stale if slot.model is not None else problem
        log.error("model not loaded", extra={"problem": problem}, exc_info=True)
        return False
    slot.model = model
    slot.problem = model.stale
    metrics.model_info.labels(model.name, model.version, model.uri).set(1)
    slot.ready.set()
    log.info(
        "model loaded",
        extra={"model_uri": model.uri, "model_version": model.version, "stale": model.stale},
    )
    return not model.stale


def load_into(
    settings: ServiceSettings,
    slot: ModelSlot,
    metrics: ServiceMetrics,
    threads: RowThreads | None = None,
) -> None:
    """Load before serving; if that fails, or gives only the copy last loaded, serve what there
    is (nothing: not ready; the copy: ready, and stale) and retry in the background.

    A worker that loaded its model before accepting requests never answers 503 next to a
    ready sibling; a model that cannot load is a log line and a not-ready service, not a
    crash loop; and a registry that is down on a reload does not take the model away."""
    if try_loading(settings, slot, metrics, threads):
        return

    def retry() -> None:
        leave_signals_to_the_main_thread()
        while True:
            time.sleep(settings.load_retry_seconds)
            if try_loading(settings, slot, metrics, threads):
                return

    threading.Thread(target=retry, name="model-loader", daemon=True).start()
