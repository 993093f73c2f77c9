"""The bearer token /feedback takes: FEEDBACK_TOKEN (or FEEDBACK_TOKEN_FILE, a compose secret),
else one the lab makes on the service's first start and keeps in a file only its owner reads."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mlops_lab.common.errors import UserError

TOKEN_VARIABLE = "FEEDBACK_TOKEN"


@dataclass(frozen=True)
class FeedbackToken:
    """The token, and where it came from (the variable, or the file's path), for the logs."""

    value: str
    source: str


def feedback_token(environment: Mapping[str, str], path: Path, create: bool) -> FeedbackToken:
    """FEEDBACK_TOKEN, else the token in `path`, made first when `create` and it is missing."""
    if environment.get(TOKEN_VARIABLE, "").strip():
        return FeedbackToken(environment[TOKEN_VARIABLE].strip(), TOKEN_VARIABLE)
    if not path.exists():
        if not create:
            raise UserError(
                f"/feedback needs a token: set {TOKEN_VARIABLE}, or start the service once "
                f"(`make serve` writes one to {path})"
            )
        _write_once(path, secrets.token_urlsafe(32))
    value = path.read_text().strip()
    if not value:
        raise UserError(f"{path} is empty: delete it for a new token, or set {TOKEN_VARIABLE}")
    return FeedbackToken(value, str(path))


def _write_once(path: Path, token: str) -> None:
    """The token in `path`, whole, unless a service starting at the same time wrote one first:
    written beside it, readable by its owner only, then linked in (which fails if it exists)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    beside = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(beside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(token + "\n")
        os.link(beside, path)
    except FileExistsError:
        pass  # the other service's token is the one
    finally:
        beside.unlink(missing_ok=True)
