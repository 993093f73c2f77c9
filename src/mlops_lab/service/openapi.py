"""The OpenAPI 3 document, generated from the pydantic schema the service validates with."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from mlops_lab.kernel.contract import Listing
from mlops_lab.service.settings import ServiceSettings
from mlops_lab.serving.schema import (
    API_VERSION,
    ErrorResponse,
    Feedback,
    FeedbackResponse,
    Prediction,
    PredictionResponse,
)

REF = "#/components/schemas/{model}"


def explain_parameter() -> dict[str, Any]:
    """/predict's one query parameter."""
    return {
        "name": "explain",
        "in": "query",
        "required": False,
        "schema": {"type": "boolean", "default": False},
        "description": "Add each listing's largest SHAP contributions.",
    }


def price_bins(edges: tuple[float, ...], categories: tuple[str, ...]) -> str:
    """The categories in words, e.g. 'low (up to $90), mid (up to $180) or lux (over $400)'."""
    # The last category has no upper edge: it is everything above the last one.
    bounded = [
        f"{name} (up to ${edge:g})" for name, edge in zip(categories[:-1], edges[1:], strict=True)
    ]
    return ", ".join(bounded) + f" or {categories[-1]} (over ${edges[-1]:g})"


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": REF.format(model="ErrorResponse")}}},
    }


def one_or_list(model: str, max_items: int) -> dict[str, Any]:
    """A body of one `model` object, or a list of 1 to `max_items` of them."""
    one = {"$ref": REF.format(model=model)}
    return {"oneOf": [one, {"type": "array", "items": one, "minItems": 1, "maxItems": max_items}]}


def component_schemas(settings: ServiceSettings) -> dict[str, Any]:
    """The bodies' JSON Schemas as pydantic generates them from the models that validate them,
    with what the settings add: the example, the categories, the lowest price, one truth."""
    example = settings.example
    _, schemas = models_json_schema(
        [
            (Listing, "validation"),
            (Prediction, "serialization"),
            (PredictionResponse, "serialization"),
            (ErrorResponse, "serialization"),
            (Feedback, "validation"),
            (FeedbackResponse, "serialization"),
        ],
        ref_template=REF,
    )
    components = schemas["$defs"]
    components["Listing"]["examples"] = [example]
    category = components["Prediction"]["properties"]["price_category"]
    category["enum"] = list(settings.categories)
    feedback = components["Feedback"]
    feedback["properties"]["price_category"]["anyOf"][0]["enum"] = list(settings.categories)
    # A price at or below the first edge is in no category: the service refuses it.
    price = feedback["properties"]["price"]["anyOf"][0]
    price["exclusiveMinimum"] = settings.price_bin_edges[0]
    # Exactly one truth per record: the schema says what the validator checks.
    feedback["oneOf"] = [
        {
            "required": ["price"],
            "properties": {"price": {"type": "number"}, "price_category": {"type": "null"}},
        },
        {
            "required": ["price_category"],
            "properties": {"price_category": {"type": "string"}, "price": {"type": "null"}},
        },
    ]
    feedback["examples"] = [
        {"id": example.get("id", 1001), "price": 150.0},
        {"id": example.get("id", 1001), "price_category": settings.categories[1]},
    ]
    return components


def single_response() -> dict[str, Any]:
    """One listing's answer: its prediction, with the model and API versions beside it."""
    return {
        "allOf": [
            {"$ref": REF.format(model="Prediction")},
            {
                "type": "object",
                "required": ["model_name", "model_version", "api_version"],
                "properties": {
                    "model_name": {"type": "string"},
                    "model_version": {"type": "string"},
                    "api_version": {"type": "string"},
                },
            },
        ]
    }


def predict_path(settings: ServiceSettings) -> dict[str, Any]:
    """POST /predict."""
    example = settings.example
    return {
        "post": {
            "operationId": "predict",
            "tags": ["predictions"],
            "summary": (
                f"Price one listing, or a list of up to {settings.max_batch_size} "
                f"listings (body at most {settings.max_body_bytes} bytes)"
            ),
            "parameters": [explain_parameter()],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": one_or_list("Listing", settings.max_batch_size),
                        "examples": {
                            "1 listing": {"value": example},
                            "2 listings": {"value": [example, {**example, "id": 1002}]},
                        },
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "One prediction for one listing; a list for a list.",
                    "content": {
                        "application/json": {
                            "schema": {
                                "oneOf": [
                                    single_response(),
                                    {"$ref": REF.format(model="PredictionResponse")},
                                ]
                            }
                        }
                    },
                },
                "400": _error("The body is not JSON."),
                "413": _error("Too many listings, or the body is too large."),
                "415": _error("The body is not sent as application/json."),
                "422": _error(
                    "A listing is invalid: `details` names each field (the first "
                    "20 problems, then how many more)."
                ),
                "429": _error(
                    "Too many explanations at once (explain=true): retry after the "
                    "seconds in Retry-After, or ask without explain."
                ),
                "503": _error("The model is not loaded yet."),
            },
        }
    }


def feedback_path(settings: ServiceSettings) -> dict[str, Any]:
    """POST /feedback."""
    return {
        "post": {
            "operationId": "feedback",
            "security": [{"feedbackToken": []}],
            "tags": ["predictions"],
            "summary": (
                "The truth about listings already priced: their true price or category, "
                f"one record or a list of up to {settings.max_batch_size}"
            ),
            "description": (
                "Joins the prediction log by listing `id`, for `mlops-lab monitor`'s "
                "quality figures. A price is turned into its category with the model's "
                f"bins: {price_bins(settings.price_bin_edges, settings.categories)}."
            ),
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": one_or_list("Feedback", settings.max_batch_size)}
                },
            },
            "responses": {
                "200": {
                    "description": "Stored.",
                    "content": {
                        "application/json": {
                            "schema": {"$ref": REF.format(model="FeedbackResponse")}
                        }
                    },
                },
                "400": _error("The body is not JSON."),
                "401": _error("No bearer token, or not the service's."),
                "413": _error("Too many records, or the body is too large."),
                "415": _error("The body is not sent as application/json."),
                "404": _error("No logged prediction has a record's id: `details` names each."),
                "422": _error("A record is invalid: `details` names each field."),
                "503": _error("The prediction log is off, or its store cannot be reached."),
            },
        }
    }


def operations_paths() -> dict[str, Any]:
    """GET /health, /ready and /metrics."""
    return {
        "/health": {
            "get": {
                "operationId": "health",
                "tags": ["operations"],
                "summary": "Liveness: the process answers",
                "responses": {"200": {"description": "Alive."}},
            }
        },
        "/ready": {
            "get": {
                "operationId": "ready",
                "tags": ["operations"],
                "summary": "Readiness: the model is loaded",
                "responses": {
                    "200": {
                        "description": "Ready, with the model's name and version, and the "
                        "newer model it would not serve (`refused`), if any."
                    },
                    "503": {"description": "Not ready, with the reason."},
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "tags": ["operations"],
                "summary": "Prometheus metrics",
                "responses": {"200": {"description": "Prometheus text format."}},
            }
        },
    }


def openapi_document(settings: ServiceSettings) -> dict[str, Any]:
    """The API's OpenAPI 3.1 document, with the challenge payload as the example."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "MLOps Lab price-category API",
            "version": API_VERSION,
            "description": (
                f"Prices NYC Airbnb listings as "
                f"{price_bins(settings.price_bin_edges, settings.categories)}. "
                "Unknown fields are rejected with 422 so a misspelt field is never silently "
                "ignored. Data: Inside Airbnb (CC BY 4.0)."
            ),
        },
        "paths": {
            "/predict": predict_path(settings),
            "/feedback": feedback_path(settings),
            **operations_paths(),
        },
        "components": {
            "schemas": component_schemas(settings),
            "securitySchemes": {
                "feedbackToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "FEEDBACK_TOKEN, or the file config.yaml's "
                    "`feedback_token_path` names (the service writes it on its first start).",
                }
            },
        },
    }
