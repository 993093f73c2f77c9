"""The OpenAPI 3 document, generated from the pydantic schema the service validates with."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from mlops_lab.prediction_app.schema import (
    API_VERSION,
    CHALLENGE_EXAMPLE,
    ErrorResponse,
    Listing,
    Prediction,
    PredictionResponse,
)

REF = "#/components/schemas/{model}"
SECOND_EXAMPLE = {**CHALLENGE_EXAMPLE, "id": 1002, "neighbourhood": "Queens", "bathrooms": 1}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": REF.format(model="ErrorResponse")}}},
    }


def openapi_document(max_batch_size: int, max_body_bytes: int) -> dict[str, Any]:
    """The API's OpenAPI 3.1 document, with the challenge payload as the example."""
    _, schemas = models_json_schema(
        [
            (Listing, "validation"),
            (Prediction, "serialization"),
            (PredictionResponse, "serialization"),
            (ErrorResponse, "serialization"),
        ],
        ref_template=REF,
    )
    components = schemas["$defs"]
    single_response = {
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
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "MLOps Lab price-category API",
            "version": API_VERSION,
            "description": (
                "Prices NYC Airbnb listings as low (≤ $90), mid (≤ $180), high (≤ $400) or lux. "
                "Unknown fields are rejected with 422 so a misspelt field is never silently "
                "ignored. Data: Inside Airbnb (CC BY 4.0)."
            ),
        },
        "paths": {
            "/predict": {
                "post": {
                    "summary": "Price one listing, or a list of up to "
                    f"{max_batch_size} listings (body at most {max_body_bytes} bytes)",
                    "parameters": [
                        {
                            "name": "explain",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "boolean", "default": False},
                            "description": "Add each listing's largest SHAP contributions.",
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {"$ref": REF.format(model="Listing")},
                                        {
                                            "type": "array",
                                            "items": {"$ref": REF.format(model="Listing")},
                                            "minItems": 1,
                                            "maxItems": max_batch_size,
                                        },
                                    ]
                                },
                                "examples": {
                                    "one listing": {"value": CHALLENGE_EXAMPLE},
                                    "a batch": {
                                        "value": [
                                            CHALLENGE_EXAMPLE,
                                            {**CHALLENGE_EXAMPLE, "id": 1002},
                                        ]
                                    },
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
                                            single_response,
                                            {"$ref": REF.format(model="PredictionResponse")},
                                        ]
                                    }
                                }
                            },
                        },
                        "400": _error("The body is not JSON."),
                        "413": _error("Too many listings, or the body is too large."),
                        "415": _error("The body is not sent as application/json."),
                        "422": _error("A listing is invalid: `details` names each field."),
                        "503": _error("The model is not loaded yet."),
                    },
                }
            },
            "/health": {
                "get": {
                    "summary": "Liveness: the process answers",
                    "responses": {"200": {"description": "Alive."}},
                }
            },
            "/ready": {
                "get": {
                    "summary": "Readiness: the model is loaded",
                    "responses": {
                        "200": {"description": "Ready, with the model's name and version."},
                        "503": {"description": "Not ready, with the reason."},
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {"200": {"description": "Prometheus text format."}},
                }
            },
        },
        "components": {"schemas": components},
    }
