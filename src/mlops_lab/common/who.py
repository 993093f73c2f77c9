"""Who runs a command that changes the registry: kept on the versions it changes."""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Mapping


def who_runs(environment: Mapping[str, str]) -> str:
    """The MLflow login, else the system user (a uid without a name in a container), @host."""
    user = environment.get("MLFLOW_TRACKING_USERNAME", "")
    if not user:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # a uid with no passwd entry, as in a container
            user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()}"
