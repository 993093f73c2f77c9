"""Loading the model to serve, from the registry or a local MLflow model directory, and keeping
the service up while it cannot be loaded."""

from __future__ import annotations

import logging
import math
import shutil
import threading
import time
from dataclasses import astuple, dataclass, field
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
from mlops_lab.kernel.registry import load_logged_model, local_version
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


@dataclass(frozen=True)
class Refusal:
    """A model the service would not serve, and why."""

    model: ModelIdentity
    reason: str


@dataclass
class ModelSlot:
    """The loaded model, or why there is none yet; filled by a background loader, and swapped
    whole when the model it follows changes (a request keeps the one it started with)."""

    model: ServedModel | None = None
    problem: str = "loading"
    ready: threading.Event = field(default_factory=threading.Event)
    # The last model the follower would not serve: not tried again while the URI names it.
    refused: Refusal | None = None


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


def load_checked(
    settings: ServiceSettings, fall_back: bool, threads: RowThreads | None
) -> ServedModel:
    """The model MODEL_URI names, loaded as the service serves it and checked on the smoke
    stage's payloads (the copy last loaded only with `fall_back`)."""
    model = load_served_model(
        settings.model_uri,
        list(settings.categories),
        settings.model_cache_dir,
        fall_back=fall_back,
        threads=threads,
    )
    check_answers(model, settings.check_payloads)
    return model


def serve_model(slot: ModelSlot, model: ServedModel, metrics: ServiceMetrics) -> None:
    """Put the model in the slot at once; the one it replaces stops showing in /metrics."""
    previous = slot.model
    slot.model = model
    slot.problem = model.stale
    if previous is not None and previous.identity != model.identity:
        metrics.model_info.labels(previous.name, previous.version, previous.uri).set(0)
    metrics.model_info.labels(model.name, model.version, model.uri).set(1)
    slot.ready.set()
    log.info(
        "model loaded",
        extra={"model_uri": model.uri, "model_version": model.version, "stale": model.stale},
    )


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
        model = load_checked(settings, fall_back=slot.model is None, threads=threads)
    except Exception as error:  # any failure leaves the service up, and not ready if empty
        problem = f"cannot load model {settings.model_uri}: {error}"
        slot.problem = slot.model.stale if slot.model is not None else problem
        log.error("model not loaded", extra={"problem": problem}, exc_info=True)
        return False
    serve_model(slot, model, metrics)
    return not model.stale


def follow(
    settings: ServiceSettings,
    slot: ModelSlot,
    metrics: ServiceMetrics,
    threads: RowThreads | None = None,
) -> None:
    """If MODEL_URI names another model than the one served, load and check it aside, then
    serve it; one that fails is refused, and not tried again while the URI names it."""
    try:
        named = named_identity(settings.model_uri)
    except Exception as error:  # the registry out of reach: keep serving what is loaded
        log.warning(
            "cannot look up the model to follow",
            extra={"model_uri": settings.model_uri, "problem": f"{type(error).__name__}: {error}"},
        )
        return
    if slot.model is None or named == slot.model.identity:
        slot.refused = None
        return
    if slot.refused is not None and slot.refused.model == named:
        return
    log.info("following %s to %s", settings.model_uri, named)
    try:
        model = load_checked(settings, fall_back=False, threads=threads)
    except Exception as error:  # whatever is wrong with it, the model served stays
        slot.refused = Refusal(named, f"{type(error).__name__}: {error}")
        metrics.model_refusals.labels(named.name, named.version).inc()
        log.error(
            "model refused",
            extra={"model_uri": settings.model_uri, "problem": slot.refused.reason},
            exc_info=True,
        )
        return
    # Moved again while it loaded (or a folder replaced mid-read): the next look takes the newest.
    if named_identity(settings.model_uri) == model.identity:
        slot.refused = None
        serve_model(slot, model, metrics)


def load_into(
    settings: ServiceSettings,
    slot: ModelSlot,
    metrics: ServiceMetrics,
    threads: RowThreads | None = None,
) -> None:
    """Load before serving; if that fails, or gives only the copy last loaded, serve what there
    is (nothing: not ready; the copy: ready, and stale) and retry in the background. Then, if
    MODEL_URI is an alias or a folder, follow it every model_refresh_seconds.

    A worker that loaded its model before accepting requests never answers 503 next to a
    ready sibling; a model that cannot load is a log line and a not-ready service, not a
    crash loop; and a registry that is down on a reload does not take the model away."""
    fresh = try_loading(settings, slot, metrics, threads)

    def keep_loaded() -> None:
        leave_signals_to_the_main_thread()
        loaded = fresh
        while not loaded:
            time.sleep(settings.load_retry_seconds)
            loaded = try_loading(settings, slot, metrics, threads)
        while can_move(settings.model_uri):
            time.sleep(settings.model_refresh_seconds)
            follow(settings, slot, metrics, threads)

    if not fresh or can_move(settings.model_uri):
        threading.Thread(target=keep_loaded, name="model-loader", daemon=True).start()
