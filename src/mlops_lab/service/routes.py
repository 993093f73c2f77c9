"""The service's routes: /predict, /feedback, /health, /ready, /metrics, /openapi.json and /docs."""

from __future__ import annotations

import hmac
import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
from flask import Blueprint, Response, current_app, g, jsonify, request, send_from_directory
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Engine, insert
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import RequestEntityTooLarge

from mlops_lab.kernel.contract import Listing, validation_details
from mlops_lab.kernel.prices import price_category
from mlops_lab.service.errors import RequestError
from mlops_lab.service.following import ModelSlot
from mlops_lab.service.metrics import EXPOSITION_TYPE, ServiceMetrics
from mlops_lab.service.prediction_log import AnsweredRequest, PredictionLog
from mlops_lab.service.settings import ServiceSettings
from mlops_lab.service.slots import ExplanationSlots
from mlops_lab.serving.feedback_token import FeedbackToken
from mlops_lab.serving.prediction_store import (
    FEEDBACK,
    listing_key,
    logged_listing_ids,
)
from mlops_lab.serving.schema import API_VERSION, Feedback

routes = Blueprint("service", __name__)

SINGLE = TypeAdapter(Listing)
BATCH = TypeAdapter(list[Listing])
SINGLE_FEEDBACK = TypeAdapter(Feedback)
FEEDBACK_BATCH = TypeAdapter(list[Feedback])


@dataclass(frozen=True)
class ServiceState:
    """One app's settings, model, metrics and documents: what its routes read."""

    settings: ServiceSettings
    slot: ModelSlot
    metrics: ServiceMetrics
    spec: dict[str, Any]
    docs_assets: Path
    explanations: ExplanationSlots
    prediction_log: PredictionLog | None
    # What /feedback reads and writes through: an engine that waits on the store at most
    # feedback_wait_seconds, and the few of this worker's threads it may hold at once.
    feedback_store: Engine | None
    feedback_threads: threading.BoundedSemaphore


def state() -> ServiceState:
    """The state of the app answering this request."""
    return current_app.extensions["mlops_lab"]


def read_items(
    single: TypeAdapter, batch: TypeAdapter, max_batch_size: int, noun: str
) -> tuple[list[Any], bool]:
    """The items (listings, feedback) in the body and whether it held one object (not a list).
    A list's length is checked before any item is validated, so a long list costs nothing but
    its parse; one object is parsed once, by its validation."""
    if not request.is_json:
        raise RequestError(
            415,
            "send JSON with Content-Type: application/json",
            [{"field": "body", "problem": f"content type is {request.content_type!r}"}],
        )
    raw = body_within(current_app.config["MAX_CONTENT_LENGTH"])
    if not raw:
        raise RequestError(400, "empty body", [{"field": "body", "problem": "no JSON"}])
    is_list = raw.lstrip()[:1] == b"["
    if is_list:
        check_list_length(parsed(raw), max_batch_size, noun)
    try:
        if is_list:
            return batch.validate_json(raw), False
        return [single.validate_json(raw)], True
    except ValidationError as error:
        if not is_list and any(problem["type"] == "json_invalid" for problem in error.errors()):
            parsed(raw)  # the same 400 as for a list, naming where the JSON breaks
        raise RequestError(422, f"invalid {noun}", validation_details(error)) from error


# How much of a body is read at a time.
READ_BYTES = 64 * 1024


def body_within(limit: int) -> bytes:
    """The request's whole body; a 413 as soon as more than `limit` bytes have come, whether
    it announced its length or was sent in chunks."""
    if (request.content_length or 0) > limit:
        raise RequestEntityTooLarge()
    stream = request.stream
    pieces, size = [], 0
    while piece := stream.read(min(READ_BYTES, limit + 1 - size)):
        pieces.append(piece)
        size += len(piece)
        if size > limit:
            raise RequestEntityTooLarge()
    return b"".join(pieces)


def parsed(raw: bytes) -> Any:
    """The body's JSON; a 400 that says where it is not JSON."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        # The json module decides: it takes what orjson refuses (NaN, integers beyond 64
        # bits), as the API always has, and its message (line, column, character) is the one
        # the API has always given.
        return json.loads(raw)
    except RecursionError as error:
        raise RequestError(
            400,
            "the body is nested too deeply",
            [{"field": "body", "problem": f"more than {sys.getrecursionlimit()} levels deep"}],
        ) from error
    except ValueError as error:
        raise RequestError(
            400,
            "the body is not valid JSON",
            [{"field": "body", "problem": f"Invalid JSON: {error}"}],
        ) from error


def check_list_length(body: Any, max_batch_size: int, noun: str) -> None:
    """A 422 for an empty list, a 413 for one longer than the service takes."""
    if not isinstance(body, list):
        return
    if not body:
        raise RequestError(422, f"no {noun}", [{"field": "body", "problem": "the list is empty"}])
    if len(body) > max_batch_size:
        raise RequestError(
            413,
            f"at most {max_batch_size} {noun} per request",
            [{"field": "body", "problem": f"{len(body)} {noun} sent"}],
        )


@routes.post("/predict")
def predict() -> Response:
    service = state()
    slot, settings = service.slot, service.settings
    if not slot.ready.is_set() or slot.model is None:
        raise RequestError(
            503, "model not loaded yet", [{"field": "model", "problem": slot.problem}]
        )
    explain = explain_asked(request.args.get("explain", "false"))
    # The whole body is read and checked before an explanation slot is taken: a client that
    # sends its body slowly, or never finishes it, holds no slot meanwhile.
    listings, one = read_items(SINGLE, BATCH, settings.max_batch_size, "listings")
    if explain and len(listings) > settings.max_explain_listings:
        raise RequestError(
            413,
            f"explain=true takes at most {settings.max_explain_listings} listings",
            [{"field": "explain", "problem": f"{len(listings)} listings sent"}],
        )
    g.listings = len(listings)
    with explanation_allowed(service, explain):
        model = slot.model
        inputs = [listing.model_input() for listing in listings]
        predictions = model.predict_listings(
            inputs, [listing.id for listing in listings], explain=explain
        )
    # One update per category, not per listing: each touches the metrics file.
    answered = Counter(prediction["price_category"] for prediction in predictions)
    for category, count in answered.items():
        service.metrics.predictions.labels(category).inc(count)
    if service.prediction_log is not None:
        service.prediction_log.record(
            AnsweredRequest(
                request_id=g.request_id,
                predicted_at=datetime.now(UTC),
                model_name=model.name,
                model_version=model.version,
                latency_ms=(time.perf_counter() - g.started) * 1000,
                inputs=inputs,
                predictions=predictions,
            )
        )
    versions = {
        "model_name": model.name,
        "model_version": model.version,
        "api_version": API_VERSION,
    }
    return jsonify(
        {**predictions[0], **versions} if one else {"predictions": predictions, **versions}
    )


@routes.post("/feedback")
def feedback() -> Response:
    service = state()
    prediction_log = service.prediction_log
    if prediction_log is None:
        raise RequestError(
            503,
            "the prediction log is off, so there is nothing to give feedback on",
            [{"field": "prediction_log", "problem": "off (PREDICTION_LOG or config.yaml)"}],
        )
    require_token(prediction_log.settings.feedback_token)
    items, one = read_items(
        SINGLE_FEEDBACK, FEEDBACK_BATCH, service.settings.max_batch_size, "feedback records"
    )
    g.listings = len(items)
    settings = service.settings
    categories = truth_categories(items, settings.price_bin_edges, settings.categories, one)
    if not service.feedback_threads.acquire(blocking=False):
        raise RequestError(
            503,
            "too many feedback requests at once: retry shortly",
            [{"field": "feedback", "problem": "every feedback thread of this worker is busy"}],
            {"Retry-After": "1"},
        )
    try:
        store_truths(prediction_log, service.feedback_store, items, categories, one)
    except SQLAlchemyError as error:
        raise RequestError(
            503,
            "the prediction store cannot be reached: retry shortly",
            [{"field": "prediction_log", "problem": error.__class__.__name__}],
            {"Retry-After": "5"},
        ) from error
    finally:
        service.feedback_threads.release()
    return jsonify({"received": len(items)})


def require_token(token: FeedbackToken | None) -> None:
    """A 401 unless the request carries `Authorization: Bearer <token>`."""
    if token is None:
        raise RequestError(
            503,
            "feedback is closed: the service has no token for it",
            [{"field": "Authorization", "problem": "set FEEDBACK_TOKEN on the service"}],
        )
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.value.encode()
    ):
        raise RequestError(
            401,
            "feedback needs the service's bearer token",
            [{"field": "Authorization", "problem": "missing, or not the service's token"}],
            {"WWW-Authenticate": 'Bearer realm="feedback"'},
        )


def store_truths(
    prediction_log: PredictionLog,
    store: Engine,
    items: list[Feedback],
    categories: list[str],
    one: bool,
) -> None:
    """The feedback records, stored, or a 404 naming those for listings never priced."""
    unknown = unknown_listing_ids(prediction_log, store, [listing_key(item.id) for item in items])
    if unknown:
        raise RequestError(
            404,
            "feedback for listings the service never priced",
            [
                {
                    "field": item_field(row, "id", one),
                    "problem": f"no logged prediction has id {item.id!r} (predictions are "
                    "written within a second of their answer)",
                }
                for row, item in enumerate(items)
                if listing_key(item.id) in unknown
            ],
        )
    store_feedback(store, g.request_id, items, categories)


def item_field(row: int, name: str, one: bool) -> str:
    """A field of the body's row-th item, as validation errors name it: `[3].price`, or
    `price` when the body held one object."""
    return name if one else f"[{row}].{name}"


def truth_categories(
    items: list[Feedback], edges: tuple[float, ...], categories: tuple[str, ...], one: bool
) -> list[str]:
    """Each feedback's true category: as sent, or the category of its true price."""
    prices = pd.Series([item.price for item in items], dtype=float)
    from_prices = price_category(prices, list(edges), list(categories))
    truths, problems = [], []
    for row, (item, from_price) in enumerate(zip(items, from_prices, strict=True)):
        truth = item.price_category if item.price is None else from_price
        if item.price is not None and pd.isna(from_price):
            problems.append(
                {
                    "field": item_field(row, "price", one),
                    "problem": f"${item.price:g} is in no category (at most ${edges[0]:g})",
                }
            )
        elif truth not in categories:
            problems.append(
                {
                    "field": item_field(row, "price_category", one),
                    "problem": f"{truth!r} is not one of {', '.join(categories)}",
                }
            )
        truths.append(truth)
    if problems:
        raise RequestError(422, "invalid feedback records", problems)
    return truths


def unknown_listing_ids(prediction_log: PredictionLog, store: Engine, keys: list[str]) -> set[str]:
    """The ids with no logged prediction; this worker's buffer is written first (waiting at
    most feedback_wait_seconds), so feedback sent right after its prediction is not refused."""
    # Through the feedback store: its waits are bounded, the writer's are not.
    prediction_log.ensure_tables(store)
    unknown = set(keys) - logged_listing_ids(store, keys)
    if unknown and prediction_log.flush(prediction_log.settings.feedback_wait_seconds):
        unknown -= logged_listing_ids(store, unknown)
    return unknown


def store_feedback(
    engine: Engine, request_id: str, items: list[Feedback], truths: list[str]
) -> None:
    """The feedback records, in one transaction."""
    received_at = datetime.now(UTC)
    rows = [
        {
            "request_id": request_id,
            "received_at": received_at,
            "listing_id": listing_key(item.id),
            "price": item.price,
            "price_category": truth,
        }
        for item, truth in zip(items, truths, strict=True)
    ]
    with engine.begin() as connection:
        connection.execute(insert(FEEDBACK), rows)


def explain_asked(value: str) -> bool:
    """The explain parameter, as the document says it: true or false."""
    asked = {"true": True, "false": False}.get(value.lower())
    if asked is None:
        problem = f"{value[:50]!r} is neither true nor false"
        raise RequestError(
            422, "explain must be true or false", [{"field": "explain", "problem": problem}]
        )
    return asked


@contextmanager
def explanation_allowed(service: ServiceState, explain: bool) -> Iterator[None]:
    """A slot among the explanations the service computes at once; 429 when none is free."""
    if not explain:
        yield
        return
    with service.explanations.taken() as free:
        if not free:
            limit = service.settings.max_concurrent_explanations
            raise RequestError(
                429,
                "too many explanations at once: retry shortly, or ask without explain=true",
                [{"field": "explain", "problem": f"at most {limit} at once"}],
                {"Retry-After": "1"},
            )
        yield


@routes.get("/health")
def health() -> Response:
    return jsonify({"status": "ok"})


@routes.get("/ready")
def ready() -> Response | tuple[Response, int]:
    service = state()
    slot, model = service.slot, service.slot.model
    if service.prediction_log is not None and service.prediction_log.failure:
        return jsonify({"status": "not ready", "reason": service.prediction_log.failure}), 503
    without_model = service.metrics.workers_without_model()
    if slot.ready.is_set() and model is not None and without_model:
        reason = f"{without_model} of the service's workers have no model yet (they retry)"
        return jsonify({"status": "not ready", "reason": reason}), 503
    if slot.ready.is_set() and model is not None:
        # Stale: it serves the copy last loaded because the registry cannot be reached.
        state_of_model = {"status": "stale", "reason": model.stale} if model.stale else {}
        # A newer model the worker would not serve: this one goes on serving.
        refusal = slot.refused
        refused = refusal and {
            "refused": {
                "model_name": refusal.model.name,
                "model_version": refusal.model.version,
                "reason": refusal.reason,
            }
        }
        return jsonify(
            {
                "status": "ready",
                "model_name": model.name,
                "model_version": model.version,
                "model_uri": model.uri,
                **state_of_model,
                **(refused or {}),
            }
        )
    return jsonify({"status": "not ready", "reason": slot.problem}), 503


@routes.get("/metrics")
def prometheus_metrics() -> Response:
    return Response(state().metrics.exposition(), mimetype=EXPOSITION_TYPE)


@routes.get("/openapi.json")
def openapi() -> Response:
    return jsonify(state().spec)


@routes.get("/docs")
def docs() -> Response:
    return Response(DOCS_PAGE, mimetype="text/html")


# What the docs page loads, and nothing else of the bundle (its own index page and initializer
# point at an external example API).
DOCS_ASSETS = frozenset({"swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png"})


@routes.get("/docs/assets/<name>")
def docs_asset(name: str) -> Response:
    if name not in DOCS_ASSETS:
        raise RequestError(404, "no such asset", [{"field": "path", "problem": name}])
    return send_from_directory(state().docs_assets, name)


# Swagger UI 5 (it reads OpenAPI 3.1) from the flask-swagger-ui package, served by the app
# itself: no CDN, works offline.
DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>MLOps Lab: price-category API</title>
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
  <link rel="icon" href="/docs/assets/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({
      url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
      // Each schema opened at its fields, not folded away.
      defaultModelsExpandDepth: 2
    });
  </script>
</body>
</html>
"""
