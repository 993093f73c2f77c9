"""Passwords handed over as files (compose secrets, /run/secrets), so that no container's
environment shows them: `<NAME>_FILE` holds the path of what `<NAME>` would hold."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from mlops_lab.common.errors import UserError

# The passwords the lab reads: MLflow's client's own variable, the one `mlops-lab tune` puts
# into OPTUNA_STORAGE, the one the prediction log puts into PREDICTION_LOG_URI, the token
# /feedback takes (serving/feedback_token.py), and the scheduler's database password and login
# (loop/schedule.py).
PASSWORD_VARIABLES = (
    "MLFLOW_TRACKING_PASSWORD",
    "OPTUNA_STORAGE_PASSWORD",
    "PREDICTION_LOG_PASSWORD",
    "FEEDBACK_TOKEN",
    "PREFECT_DB_PASSWORD",
    "SCHEDULER_PASSWORD",
)


class SecretFileError(UserError, ValueError):
    """A `<NAME>_FILE` variable that cannot stand for its password."""


def passwords_from_files(environment: Mapping[str, str]) -> dict[str, str]:
    """Each password whose `_FILE` variable is set, read from its file (one trailing newline
    dropped)."""
    passwords = {}
    for name in PASSWORD_VARIABLES:
        path = environment.get(f"{name}_FILE", "")
        if not path:
            continue
        if environment.get(name):
            raise SecretFileError(f"both {name} and {name}_FILE are set: set one of them")
        try:
            value = Path(path).read_text().removesuffix("\n").removesuffix("\r")
        except OSError as error:
            raise SecretFileError(f"{name}_FILE={path}: {error.strerror}") from error
        if not value:
            raise SecretFileError(f"{name}_FILE={path} is empty")
        passwords[name] = value
    return passwords


def with_password(uri: str, password: str) -> str:
    """A database URI `scheme://user@host/...` with the password put in, URL-encoded."""
    parts = urlsplit(uri)
    if not parts.username or parts.password is not None:
        raise SecretFileError(
            f"{parts.scheme}://…@{parts.hostname}: to add a password from a file, the URI "
            "must name a user and no password"
        )
    host = parts.netloc.rsplit("@", 1)[1]
    netloc = f"{parts.username}:{quote(password, safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))
