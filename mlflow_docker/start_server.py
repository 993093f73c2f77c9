"""Start `mlflow server` on the lab's PostgreSQL behind MLflow's basic-auth app, its accounts
created, or their passwords brought up to date, from the stack's secrets on every start.

Passwords are read from files (compose secrets, /run/secrets), never from the container's
environment, so `docker inspect` shows none. The database URI and the admin's password reach
mlflow through this process's environment, not its command line, so no process list shows
them either."""

from __future__ import annotations

import os
import secrets
import sys
import time
from pathlib import Path
from urllib.parse import quote

SECRETS_DIR = Path(os.environ.get("MLFLOW_SECRETS_DIR", "/run/secrets"))
# Users and permissions: SQLite on a volume of their own (never under /mlartifacts, which the
# server hands out to clients).
AUTH_DIR = Path(os.environ.get("MLFLOW_AUTH_DIR", "/mlflow-auth"))
# How long to wait for PostgreSQL to take MLflow's login: compose starts MLflow once it is
# healthy, but a swarm starts every service at once.
DATABASE_WAIT_SECONDS = 180
# The accounts: the variable naming each, the secret holding its password, whether it is admin.
# Every account reads everything (default_permission READ); the lab writes what it creates
# (its experiment and registered model, on which it becomes MANAGE); the prediction service
# only reads.
ACCOUNTS = (
    ("MLFLOW_ADMIN_USER", "mlflow_admin_password", True),
    ("MLFLOW_LAB_USER", "mlflow_lab_password", False),
    ("MLFLOW_SERVICE_USER", "mlflow_service_password", False),
)


def fail(message: str) -> None:
    sys.exit(f"mlflow: {message}")


def setting(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        fail(f"{name} is not set; copy .env.example to .env and fill it in")
    return value


def secret(name: str) -> str:
    path = SECRETS_DIR / name
    if not path.is_file():
        fail(f"the secret {path} is missing; docker-compose.yml mounts it from .env")
    value = path.read_text().rstrip("\r\n")
    if not value:
        fail(f"the secret {path} is empty; set its password in .env")
    return value


def backend_store_uri() -> str:
    user = quote(setting("MLFLOW_DB_USER"), safe="")
    database = quote(setting("MLFLOW_DB_NAME"), safe="")
    password = quote(secret("mlflow_db_password"), safe="")
    host = os.environ.get("MLFLOW_DB_HOST", "postgres")
    # psycopg2 named explicitly: SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3.
    return f"postgresql+psycopg2://{user}:{password}@{host}:5432/{database}"


def wait_for_database(database_uri: str, seconds: float) -> None:
    """Return once MLflow's login reaches its database; exit saying why after `seconds`."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(database_uri)
    deadline = time.monotonic() + seconds
    next_report = 0.0
    while True:
        try:
            with engine.connect():
                engine.dispose()
                return
        except sqlalchemy.exc.OperationalError as error:
            reason = str(error.orig).strip().splitlines()[0]
            if time.monotonic() > deadline:
                fail(f"PostgreSQL did not take MLflow's login within {seconds:.0f} s: {reason}")
            if time.monotonic() >= next_report:
                print(f"mlflow: waiting for PostgreSQL ({reason})", flush=True)
                next_report = time.monotonic() + 10
            time.sleep(1)


def write_auth_config(database_uri: str, admin: str) -> Path:
    """The basic-auth app's settings file (no password in it)."""
    path = AUTH_DIR / "basic_auth.ini"
    path.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = {database_uri}\n"
        f"admin_username = {admin}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # Checking a password against its hash costs about 0.3 s of CPU, and the server did it
        # on every request: a lab's `dvc repro` makes hundreds (90 s of a full run). A worker
        # now checks each login once a minute. The accounts change only at a restart, from
        # .env, which starts with empty caches.
        "auth_cache_ttl_seconds = 60\n"
    )
    return path


def ensure_accounts(database_uri: str, accounts: list[tuple[str, str, bool]]) -> None:
    """Each account exists with the password and admin flag .env gives it now."""
    from mlflow.exceptions import MlflowException
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore()
    store.init_db(database_uri)
    for username, password, is_admin in accounts:
        try:
            if store.has_user(username, use_primary=True):
                store.update_user(username, password=password, is_admin=is_admin)
            else:
                store.create_user(username, password, is_admin=is_admin)
        except MlflowException as error:
            fail(f"cannot set up the MLflow account {username!r}: {error.message}")
    print(f"mlflow: accounts ready: {', '.join(name for name, _, _ in accounts)}", flush=True)


def allowed_hosts() -> str:
    """Host headers the server answers: its compose service name for the other containers,
    loopback for the published port and the healthcheck, and any the user adds in .env. MLflow
    refuses any other with 403."""
    return ",".join(
        hosts
        for hosts in (
            "mlflow,mlflow:5000,localhost,localhost:*,127.0.0.1,127.0.0.1:*",
            os.environ.get("MLFLOW_ALLOWED_HOSTS", ""),
        )
        if hosts
    )


def main() -> None:
    accounts = [
        (setting(user_variable), secret(secret_name), is_admin)
        for user_variable, secret_name, is_admin in ACCOUNTS
    ]
    os.environ["MLFLOW_BACKEND_STORE_URI"] = backend_store_uri()
    wait_for_database(os.environ["MLFLOW_BACKEND_STORE_URI"], DATABASE_WAIT_SECONDS)
    auth_database = f"sqlite:///{AUTH_DIR / 'basic_auth.db'}"
    ensure_accounts(auth_database, accounts)
    admin, admin_password, _ = accounts[0]
    os.environ["MLFLOW_AUTH_CONFIG_PATH"] = str(write_auth_config(auth_database, admin))
    os.environ["MLFLOW_AUTH_ADMIN_PASSWORD"] = admin_password
    # Signs the UI's CSRF tokens: the same for every worker of this server, new on each start.
    os.environ.setdefault("MLFLOW_FLASK_SERVER_SECRET_KEY", secrets.token_hex(32))
    os.execvp(
        "mlflow",
        [
            "mlflow",
            "server",
            "--app-name",
            "basic-auth",
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
            allowed_hosts(),
        ],
    )


if __name__ == "__main__":
    main()
