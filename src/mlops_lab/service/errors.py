"""How the service refuses: every error is JSON naming the field at fault, with the request id."""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Flask, Response, g, jsonify
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

log = logging.getLogger("mlops_lab.service")


class RequestError(Exception):
    """A request the service refuses, with the HTTP status and the fields at fault."""

    def __init__(self, status: int, message: str, details: list[dict[str, str]] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details or []


def field_path(location: tuple[Any, ...]) -> str:
    """A pydantic error location as `[3].bedrooms` or `bedrooms`."""
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


def validation_details(error: ValidationError) -> list[dict[str, str]]:
    """Each validation problem as the field and what is wrong with it."""
    details = []
    for problem in error.errors(include_url=False):
        location = tuple(part for part in problem["loc"] if part not in ("list[Listing]",))
        details.append({"field": field_path(location), "problem": problem["msg"]})
    return details


def error_response(status: int, message: str, details: list[dict[str, str]]) -> Response:
    """The JSON body every refusal has: what is wrong, where, and the request's id."""
    response = jsonify({"error": message, "details": details, "request_id": g.get("request_id")})
    response.status_code = status
    return response


def register_error_handlers(app: Flask) -> None:
    """Refusals, HTTP errors and the unexpected, each as a JSON error response."""

    @app.errorhandler(RequestError)
    def refused(error: RequestError) -> Response:
        return error_response(error.status, error.message, error.details)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        return error_response(error.code or 500, error.description or error.name, [])

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        log.exception(json.dumps({"event": "unhandled", "request_id": g.get("request_id")}))
        return error_response(500, f"internal error ({type(error).__name__})", [])
