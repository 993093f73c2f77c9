"""The stack's scheduler's settings (Prefect 3, docs/loop.md), from the stack's variables and
secret files, and its server. Prefect reads its settings from the environment when it is
imported, so they are set here, before it is."""

from __future__ import annotations

import os
from collections.abc import Mapping

from mlops_lab.common.errors import UserError
from mlops_lab.common.secrets import with_password

SERVER_PORT = 4200


class ScheduleError(UserError, RuntimeError):
    """A setting the scheduler needs is missing, or a turn of the loop failed."""


def required(environment: Mapping[str, str], name: str) -> str:
    """A setting the stack gives the scheduler; ScheduleError naming it when it is unset."""
    value = environment.get(name, "")
    if not value:
        raise ScheduleError(f"{name} is not set: the compose profile loop sets it (docs/loop.md)")
    return value


def login(environment: Mapping[str, str]) -> str:
    """The scheduler's one login, `user:password`, as Prefect's auth string takes it."""
    return (
        f"{required(environment, 'SCHEDULER_USER')}:{required(environment, 'SCHEDULER_PASSWORD')}"
    )


def server_settings(environment: Mapping[str, str]) -> dict[str, str]:
    """Prefect's server settings: its own database in the stack's PostgreSQL, its login."""
    database = with_password(
        required(environment, "PREFECT_DB_URI"), required(environment, "PREFECT_DB_PASSWORD")
    )
    return {
        "PREFECT_API_DATABASE_CONNECTION_URL": database,
        "PREFECT_SERVER_API_AUTH_STRING": login(environment),
    }


def worker_settings(environment: Mapping[str, str]) -> dict[str, str]:
    """Prefect's client settings: where the server is, and its login."""
    required(environment, "PREFECT_API_URL")
    return {"PREFECT_API_AUTH_STRING": login(environment)}


def start_server(environment: Mapping[str, str]) -> None:
    """Become Prefect's server (API, UI and the services that schedule runs)."""
    settings = server_settings(environment)
    command = ["prefect", "server", "start", "--host", "0.0.0.0", "--port", str(SERVER_PORT)]
    os.execvpe(command[0], command, {**environment, **settings})
