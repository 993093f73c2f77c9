"""Keeping the champion loaded in each worker: loaded before serving, retried while it cannot
be, and followed when its alias or folder moves, each new model checked aside before it is
served."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import mlflow

from mlops_lab.service.metrics import ServiceMetrics
from mlops_lab.service.settings import ServiceSettings
from mlops_lab.service.threads import leave_signals_to_the_main_thread
from mlops_lab.serving.compiled import RowThreads
from mlops_lab.serving.loading import (
    ModelIdentity,
    ServedModel,
    can_move,
    check_answers,
    load_served_model,
    named_identity,
)

log = logging.getLogger(__name__)


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
