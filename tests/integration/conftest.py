"""Real services for the integration tier: a throwaway PostgreSQL and an `mlflow server` on it."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from projects import VENV_BIN, LabProject, free_port, routed_run, small_run, wait_until_ok

DATABASE_USER = "mlflow"


def postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        pytest.fail(
            "PostgreSQL server binaries not found under /usr/lib/postgresql: "
            "apt-get install postgresql (.ci/run does this)"
        )
    return found[-1].parent


def as_postgres(command: list[str]) -> list[str]:
    """Postgres refuses to run as root: run its tools as the postgres user when we are root."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="session")
def postgres_uri() -> Iterator[str]:
    """A fresh PostgreSQL cluster on loopback with an `mlflow` database and user."""
    binaries = postgres_bin()
    home = Path(tempfile.mkdtemp(prefix="mlops-lab-pg-"))
    data = home / "data"
    password_file = home / "password"
    # Made up per run, so no password is ever written into the repository.
    database_password = secrets.token_hex(16)
    password_file.write_text(secrets.token_hex(16) + "\n")
    home.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(home, "postgres", "postgres")
        shutil.chown(password_file, "postgres", "postgres")
    port = free_port()
    subprocess.run(
        as_postgres(
            [
                str(binaries / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                f"--pwfile={password_file}",
                "--no-sync",
            ]
        ),
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        as_postgres(
            [
                str(binaries / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(home / "log"),
                "-w",
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )
    try:
        for statement in (
            f"CREATE ROLE {DATABASE_USER} LOGIN PASSWORD '{database_password}'",
            f"CREATE DATABASE mlflow OWNER {DATABASE_USER}",
            # Optuna's tables are its own database's: both use alembic_version.
            f"CREATE DATABASE optuna OWNER {DATABASE_USER}",
        ):
            subprocess.run(
                as_postgres(
                    [
                        str(binaries / "psql"),
                        "-h",
                        str(home),
                        "-p",
                        str(port),
                        "-U",
                        "postgres",
                        "-v",
                        "ON_ERROR_STOP=1",
                        "-c",
                        statement,
                    ]
                ),
                check=True,
                capture_output=True,
            )
        yield (f"postgresql+psycopg2://{DATABASE_USER}:{database_password}@127.0.0.1:{port}/mlflow")
    finally:
        subprocess.run(
            as_postgres([str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(home, ignore_errors=True)


def start_mlflow_server(postgres_uri: str, artifacts: Path, log_path: Path) -> tuple[str, Any]:
    """A real `mlflow server` on the PostgreSQL store and artifact folder given, once healthy."""
    port = free_port()
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                str(VENV_BIN / "mlflow"),
                "server",
                "--backend-store-uri",
                postgres_uri,
                "--artifacts-destination",
                str(artifacts),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_until_ok(f"{uri}/health", process, log_path, "mlflow server")
    except BaseException:
        process.terminate()
        raise
    return uri, process


@pytest.fixture(scope="session")
def mlflow_server(postgres_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A real `mlflow server` on PostgreSQL, serving artifacts itself from a local folder."""
    home = tmp_path_factory.mktemp("mlflow-server")
    artifacts = home / "artifacts"
    log_path = home / "server.log"
    uri, process = start_mlflow_server(postgres_uri, artifacts, log_path)
    try:
        yield {"uri": uri, "artifacts": artifacts, "log": log_path}
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture()
def second_mlflow_server(postgres_uri: str, mlflow_server: dict, tmp_path: Path) -> Iterator[dict]:
    """Another `mlflow server` on the same store, which a test may stop as an outage."""
    uri, process = start_mlflow_server(
        postgres_uri, mlflow_server["artifacts"], tmp_path / "second-server.log"
    )
    try:
        yield {"uri": uri, "process": process}
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)


@pytest.fixture()
def small_project(tmp_path: Path) -> LabProject:
    project = LabProject(tmp_path / "lab")
    project.edit_config(small_run)
    project.commit("small run")
    return project


@pytest.fixture(scope="session")
def trained_lab(tmp_path_factory: pytest.TempPathFactory, mlflow_server: dict) -> LabProject:
    """A small lab whose pipeline ran against the mlflow server: its champion, a field router
    as on the full data, is served by the service tests."""
    project = LabProject(tmp_path_factory.mktemp("trained") / "lab")
    project.edit_config(routed_run)
    project.commit("small run with a router")

    def own_model_name(config: dict) -> None:
        config["tracking"]["registered_model_name"] = "served-price-category"

    project.edit_config(own_model_name)
    project.commit("own registered model name")
    result = project.run(["dvc", "repro"], {"MLFLOW_TRACKING_URI": mlflow_server["uri"]})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "routed_boosting registered" in result.stdout, result.stdout
    return project


class Service:
    """The prediction service under gunicorn, as `make serve` runs it."""

    def __init__(self, environment: dict[str, str], log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
        env.update({"HOST": "127.0.0.1", "PORT": str(self.port), "WEB_CONCURRENCY": "2"})
        env.update(environment)
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.log_path = log_path
        with log_path.open("w") as log:
            self.process = subprocess.Popen(
                [str(VENV_BIN / "mlops-lab"), "serve"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, seconds: float = 120) -> dict:
        ready = f"{self.url}/ready"
        return wait_until_ok(ready, self.process, self.log_path, "gunicorn", seconds).json()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=60)


@pytest.fixture(scope="session")
def local_service(trained_lab: LabProject, tmp_path_factory: pytest.TempPathFactory):
    """The service on the local model directory only: no tracking server involved."""
    service = Service(
        {"MODEL_URI": str(trained_lab.path / "models" / "price_category")},
        tmp_path_factory.mktemp("service") / "gunicorn.log",
    )
    try:
        service.wait_ready()
        yield service
    finally:
        service.stop()


@pytest.fixture()
def service_factory(tmp_path: Path):
    """Start services with given settings; all are stopped when the test ends."""
    started: list[Service] = []

    def start(environment: dict[str, str]) -> Service:
        service = Service(environment, tmp_path / f"gunicorn-{len(started)}.log")
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()
