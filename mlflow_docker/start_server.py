"""Start `mlflow server` on the lab's PostgreSQL, its credentials taken from the environment.

The backend URI goes to mlflow through MLFLOW_BACKEND_STORE_URI, not the command line, so the
password never shows in a process list."""

import os
import sys
from urllib.parse import quote

REQUIRED = ("MLFLOW_DB_USER", "MLFLOW_DB_PASSWORD", "MLFLOW_DB_NAME")


def main() -> None:
    missing = [name for name in REQUIRED if not os.environ.get(name)]
    if missing:
        sys.exit(f"mlflow: {', '.join(missing)} not set; copy .env.example to .env and fill it in")
    user, password, database = (quote(os.environ[name], safe="") for name in REQUIRED)
    host = os.environ.get("MLFLOW_DB_HOST", "postgres")
    # psycopg2 named explicitly: SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3.
    os.environ["MLFLOW_BACKEND_STORE_URI"] = (
        f"postgresql+psycopg2://{user}:{password}@{host}:5432/{database}"
    )
    # Host headers the server answers: its compose service name for the other containers,
    # loopback for the published port and the healthcheck, and any the user adds in .env.
    # MLflow refuses any other with 403.
    allowed_hosts = ",".join(
        host
        for host in (
            "mlflow,mlflow:5000,localhost,localhost:*,127.0.0.1,127.0.0.1:*",
            os.environ.get("MLFLOW_ALLOWED_HOSTS", ""),
        )
        if host
    )
    os.execvp(
        "mlflow",
        [
            "mlflow",
            "server",
            "--host",
            "0.0.0.0",
            "--port",
            "5000",
            "--workers",
            os.environ.get("MLFLOW_WORKERS", "2"),
            "--serve-artifacts",
            "--artifacts-destination",
            "/mlartifacts",
            "--allowed-hosts",
            allowed_hosts,
        ],
    )


if __name__ == "__main__":
    main()
