"""Loading the model to serve, from the registry or a local MLflow model directory, and keeping
the service up while it cannot be loaded."""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Mapping
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import Model as MlflowModel
from mlflow.tracking import MlflowClient

from mlops_lab.common.errors import UserError
from mlops_lab.common.files import replace_directory_atomically
from mlops_lab.config import LabConfig
from mlops_lab.kernel.contract import Listing
from mlops_lab.kernel.decision import ordered_probabilities, row_decision_weights
from mlops_lab.kernel.features import Columns, conform_listings, conform_records, present_fields
from mlops_lab.kernel.modelling import Model
from mlops_lab.serving.answers import format_predictions
from mlops_lab.serving.attribution import explain_listings, top_contributions
from mlops_lab.serving.compiled import CompiledModel, RowThreads, UnsupportedModel, compile_model
from mlops_lab.tracking.registry import CHAMPION, alias_uri, load_logged_model, local_version

log = logging.getLogger(__name__)

TOP_CONTRIBUTIONS = 5


def served_model_uri(config: LabConfig, environment: Mapping[str, str]) -> str:
    """What `make serve` serves: MODEL_URI, else the registry's champion when a tracking server
    is set, else the champion's local folder."""
    default = (
        alias_uri(config.tracking.registered_model_name, CHAMPION)
        if environment.get("MLFLOW_TRACKING_URI")
        else str(config.promotion.champion_dir)
    )
    return environment.get("MODEL_URI", default)


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
class ModelIdentity:
    """Which model a URI names: another identity is another model to load."""

    name: str
    version: str
    model_id: str = ""

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


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
    # A local folder's MLmodel id: tells apart two folders of one version, or of none.
    model_id: str = ""

    @property
    def identity(self) -> ModelIdentity:
        return ModelIdentity(self.name, self.version, self.model_id)

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


def folder_identity(local: Path) -> ModelIdentity:
    """The registered name and version of a local model folder (its own name and
    "unregistered" if none), and its MLmodel id."""
    name, version = local_version(local) or (local.name, "unregistered")
    return ModelIdentity(name, version, MlflowModel.load(local).model_uuid or "")


def named_identity(uri: str) -> ModelIdentity:
    """What a model URI names now, without loading it: the version an alias or a number
    picks in the registry, or what a local folder holds."""
    if uri.startswith("models:/"):
        return ModelIdentity(*resolve_version(uri))
    local = Path(uri)
    if not (local / "MLmodel").is_file():
        raise ModelNotFound(
            f"no model at {local}: `dvc repro` (or `make run`) trains one and puts the "
            "champion there; MODEL_URI or --model-uri names another"
        )
    return folder_identity(local)


def can_move(uri: str) -> bool:
    """Whether what the URI names can change while the service runs: an alias or a local
    folder can, a registry version number cannot."""
    return not uri.startswith("models:/") or "@" in uri


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
    stale, model_id = "", ""
    if uri.startswith("models:/"):
        local, name, version, stale = fetch(uri, cache_dir, fall_back)
    else:
        local = Path(uri)
        name, version, model_id = astuple(named_identity(uri))
    model = load_logged_model(str(local))
    example = pd.DataFrame(MlflowModel.load(local).load_input_example(str(local)))
    unknown = sorted(set(model.classes_) - set(categories))
    if unknown:
        raise ValueError(f"model {uri} predicts categories {unknown} not in {categories}")
    predictor = choose_predictor(model, example, parallel, threads)
    served = ServedModel(
        model,
        predictor,
        uri,
        name,
        version,
        categories,
        complete_listings(example),
        stale,
        model_id,
    )
    # The first call compiles the tree walk and SHAP's code: pay it before reporting ready.
    served.predict_listings(example.to_dict("records"), list(example.index), explain=True)
    log.info("loaded %s (%s v%s)", uri, name, version)
    return served


def check_answers(model: ServedModel, payloads: tuple[dict[str, Any], ...]) -> None:
    """ValueError unless the model answers each payload, validated as the API validates it,
    with one of its categories and finite probabilities that sum to one."""
    answers = model.predict([Listing.model_validate(payload) for payload in payloads])
    for answer in answers:
        probabilities = list(answer["probabilities"].values())
        if not (
            answer["price_category"] in model.categories
            and all(math.isfinite(p) and 0 <= p <= 1 for p in probabilities)
            and math.isclose(sum(probabilities), 1, abs_tol=1e-4)
        ):
            raise ValueError(f"listing {answer['id']} was answered {answer}")
