"""How the service refuses: every error is JSON naming the field at fault, with the request id."""

from __future__ import annotations

import logging

from flask import Flask, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

log = logging.getLogger("mlops_lab.service")


# Problems listed in one error response: enough to fix a request, and a response that stays
# small whatever was sent (100,000 empty listings once got a 61.7 MB answer).
MAX_DETAILS = 20


class RequestError(Exception):
    """A request the service refuses, with the HTTP status and the fields at fault."""

    def __init__(
        self,
        status: int,
        message: str,
        details: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details or []
        self.headers = headers or {}


def capped(details: list[dict[str, str]]) -> list[dict[str, str]]:
    """The first MAX_DETAILS problems, and how many more there are."""
    if len(details) <= MAX_DETAILS:
        return details
    more = {"field": "body", "problem": f"and {len(details) - MAX_DETAILS} more problems"}
    return [*details[:MAX_DETAILS], more]


def error_response(
    status: int,
    message: str,
    details: list[dict[str, str]],
    headers: dict[str, str] | None = None,
) -> Response:
    """The JSON body every refusal has: what is wrong, where, and the request's id."""
    response = jsonify(
        {"error": message, "details": capped(details), "request_id": g.get("request_id")}
    )
    response.status_code = status
    response.headers.update(headers or {})
    return response


def register_error_handlers(app: Flask) -> None:
    """Refusals, HTTP errors and the unexpected, each as a JSON error response."""

    @app.errorhandler(RequestError)
    def refused(error: RequestError) -> Response:
        return error_response(error.status, error.message, error.details, error.headers)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(error: RequestEntityTooLarge) -> Response:
        # Answered as soon as the cap is passed, without reading the rest: the connection
        # closes, so what the client still sends is never mistaken for a next request.
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        sent = request.content_length
        problem = f"{sent} bytes sent, at most {limit}" if sent else f"at most {limit} bytes"
        return error_response(
            413,
            "the body is too large",
            [{"field": "body", "problem": problem}],
            {"Connection": "close"},
        )

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        return error_response(error.code or 500, error.description or error.name, [])

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        log.exception("unhandled error", extra={"request_id": g.get("request_id")})
        return error_response(500, f"internal error ({type(error).__name__})", [])
